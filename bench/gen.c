/* gen: writes a deterministic captain run directory for the flatline benchmarks.
 *
 *   gen RUN_DIR N NOW_EPOCH_S
 *       N delegations of about 2 KB, RUN_DIR/delegations/del-NNNNNNN.json, modelled on a
 *       captain launch record (nested child_agent, executor, worker_request with a prompt of a
 *       few hundred characters, worker_launch_evidence, worker_lifecycle with timestamps,
 *       worker_result on finished ones). A fixed mix of states relative to NOW (pass the same
 *       instant to `flatline status --now`). No running delegation records a process id, so
 *       no state depends on what runs on the machine; finished ones record the pid they had.
 *       The same seed every time: delegation i is the same document whatever N is.
 *
 *   gen RUN_DIR --live LAUNCH_MS STARTED_MS PROGRESS_MS < PIDS
 *       one running delegation per pid read from stdin (live-NNNN.json), with the pid, the
 *       launch/start/progress instants given (real clock, ms since the epoch) and an event
 *       stream path raw-events/live-NNNN.jsonl: what a captain writes for live workers.
 *
 * Built by bench/run.sh with `cc -O2`; only libc.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t rng_state;

static uint64_t next(void) {
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return x;
}

static uint64_t below(uint64_t bound) { return next() % bound; }

/* RFC 3339 with milliseconds and Z, as captains and flatline write them. */
static void stamp(char *out, size_t size, int64_t ms) {
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

static const char *KINDS[] = {"implementation", "review", "test", "research"};
static const char *AGENTS[][2] = {
    {"codex", "gpt-5-codex"}, {"claude", "claude-sonnet-4-5"}, {"gemini", "gemini-2.5-pro"}};
static const char *EXECUTORS[] = {"codex_exec", "claude_print", "gemini_stream"};
static const char *AREAS[] = {"parser",  "config", "store", "output",
                              "signals", "fan-in", "digest", "manifest"};

struct buf {
    char data[8192];
    size_t len;
};

__attribute__((format(printf, 2, 3))) static void put(struct buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->data + b->len, sizeof b->data - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof b->data - b->len) {
        fprintf(stderr, "gen: document too large\n");
        exit(1);
    }
    b->len += (size_t)n;
}

static void write_file(const char *dir, const char *name, const struct buf *b) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        fprintf(stderr, "gen: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    if (write(fd, b->data, b->len) != (ssize_t)b->len) {
        fprintf(stderr, "gen: %s: short write\n", path);
        exit(1);
    }
    close(fd);
}

/* The lifecycle mix, per 20 delegations: mostly finished workers, a few running in each
 * running state, one of each odd case flatline must handle. */
enum kind {
    COMPLETED, FAILED, CANCELLED, QUEUED, LAUNCHING, ACTIVE, QUIET, STALE, TIMED_OUT,
    RECLAIMED, ACTIVE_OWN_THRESHOLDS, EXECUTOR_ONLY
};
static const enum kind MIX[20] = {
    COMPLETED, ACTIVE,    COMPLETED, QUIET,     FAILED,    COMPLETED, QUEUED,
    ACTIVE,    COMPLETED, STALE,     CANCELLED, COMPLETED, LAUNCHING, ACTIVE_OWN_THRESHOLDS,
    FAILED,    TIMED_OUT, COMPLETED, RECLAIMED, QUEUED,    EXECUTOR_ONLY};

static const char *status_of(enum kind k) {
    switch (k) {
    case COMPLETED: return "completed";
    case FAILED: case RECLAIMED: return "failed";
    case CANCELLED: return "cancelled";
    case QUEUED: return "queued";
    default: return "running";
    }
}

/* The common head: identity, agent, executor, request, launch evidence. */
static void head(struct buf *b, const char *id, const char *card, int lane, const char *kind,
                 int agent, const char *child_status, const char *executor_status,
                 int top_level_kind, const char *created) {
    const char *area = AREAS[lane % 8];
    b->len = 0;
    put(b, "{\n  \"schema\": \"captain.delegation.v1\",\n");
    put(b, "  \"delegation_id\": \"%s\",\n  \"task_card_id\": \"%s\",\n", id, card);
    if (top_level_kind) put(b, "  \"work_kind\": \"%s\",\n", kind);
    put(b, "  \"summary\": \"Worker %s for %s: %s of the %s module\",\n", id, card, kind, area);
    put(b, "  \"created_at\": \"%s\",\n", created);
    put(b, "  \"child_agent\": {\n    \"agent\": \"%s\",\n    \"model\": \"%s\",\n", AGENTS[agent][0],
        AGENTS[agent][1]);
    if (child_status) put(b, "    \"status\": \"%s\",\n", child_status);
    put(b, "    \"role\": \"worker\",\n    \"lane_id\": \"lane-%02d\"\n  },\n", lane);
    put(b, "  \"executor\": {\n    \"kind\": \"%s\",\n    \"status\": \"%s\",\n", EXECUTORS[agent],
        executor_status);
    put(b, "    \"sandbox\": \"workspace-write\",\n    \"approval_policy\": \"never\",\n"
           "    \"max_turns\": 40\n  },\n");
    put(b, "  \"worker_request\": {\n    \"work_kind\": \"%s\",\n", kind);
    put(b, "    \"prompt\": \"You are lane-%02d of task card %s. Implement the %s change for the "
           "%s module described in the card: keep the diff small, run `cargo test %s` and the "
           "linters, and report what changed and why.\\nDo not touch files outside the lane's "
           "paths (src/%s/, tests/%s/). If a test fails for a reason unrelated to the change, "
           "say so and stop \\u2014 do not \\\"fix\\\" it. Reply with a short summary → then "
           "the list of files.\",\n",
        lane, card, kind, area, area, area, area);
    put(b, "    \"paths\": [\n      \"src/%s/\",\n      \"tests/%s/\"\n    ],\n", area, area);
    put(b, "    \"acceptance\": [\n      \"cargo test %s\",\n      \"cargo clippy -- -D "
           "warnings\"\n    ],\n", area);
    put(b, "    \"priority\": %d\n  },\n", lane % 3);
    put(b, "  \"worker_launch_evidence\": {\n    \"work_kind\": \"%s\",\n", kind);
    put(b, "    \"raw_events_file\": \"raw-events/%s.jsonl\",\n", id);
    put(b, "    \"command\": [\n      \"%s\",\n      \"exec\",\n      \"--json\",\n      "
           "\"--full-auto\",\n      \"-C\",\n      \"/srv/work/%s/lane-%02d\"\n    ],\n",
        AGENTS[agent][0], card, lane);
    put(b, "    \"cwd\": \"/srv/work/%s/lane-%02d\",\n    \"launched_by\": \"captain\",\n", card,
        lane);
    put(b, "    \"env_keys\": [\n      \"PATH\",\n      \"HOME\",\n      \"CODEX_HOME\"\n    ]\n"
           "  },\n");
}

static void delegation(struct buf *b, long i, int64_t now) {
    char id[32], card[32], q[80], l[80], s[80], p[80], r[80];
    snprintf(id, sizeof id, "del-%07ld", i);
    int card_no = (int)(i / 8);
    snprintf(card, sizeof card, "card-%05d", card_no);
    int lane = (int)(i % 8);
    enum kind k = MIX[i % 20];
    const char *kind = KINDS[below(4)];
    int agent = (int)below(3);
    int top_level_kind = below(10) == 0;
    /* Ages in ms from now, away from every threshold boundary (defaults: quiet 22.5 s,
     * stale 45 s, timeout 90 s). */
    int64_t age;
    switch (k) {
    case ACTIVE: case EXECUTOR_ONLY: age = 100 + (int64_t)below(20000); break;
    case QUIET: age = 23000 + (int64_t)below(21000); break;
    case STALE: age = 46000 + (int64_t)below(43000); break;
    case TIMED_OUT: age = 91000 + (int64_t)below(3600000); break;
    case ACTIVE_OWN_THRESHOLDS: age = 100 + (int64_t)below(5000); break;
    default: age = 60000 + (int64_t)below(7200000); break;
    }
    int64_t progress = now - age;
    int64_t started = progress - 1000 - (int64_t)below(600000);
    int64_t launched = started - 500 - (int64_t)below(5000);
    int64_t queued = launched - (int64_t)below(120000);
    stamp(q, sizeof q, queued);
    stamp(l, sizeof l, launched);
    stamp(s, sizeof s, started);
    stamp(p, sizeof p, progress);

    const char *status = status_of(k);
    head(b, id, card, lane, kind, agent, k == EXECUTOR_ONLY ? NULL : status, status,
         top_level_kind, q);
    put(b, "  \"worker_lifecycle\": {\n");
    switch (k) {
    case QUEUED:
        put(b, "    \"state\": \"queued\",\n    \"reclaim_state\": \"not_needed\",\n");
        put(b, "    \"queued_at\": \"%s\"\n  }\n}\n", q);
        return;
    case LAUNCHING: {
        int64_t requested = now - 500 - (int64_t)below(10000);
        stamp(l, sizeof l, requested);
        stamp(q, sizeof q, requested - 3000);
        put(b, "    \"state\": \"launching\",\n    \"reclaim_state\": \"not_needed\",\n");
        put(b, "    \"queued_at\": \"%s\",\n    \"launch_requested_at\": \"%s\"\n  }\n}\n", q, l);
        return;
    }
    default: break;
    }
    put(b, "    \"state\": \"%s\",\n",
        k == COMPLETED   ? "returned"
        : k == FAILED    ? "failed"
        : k == CANCELLED ? "cancelled"
        : k == RECLAIMED ? "timed_out"
                         : "running_active");
    put(b, "    \"reclaim_state\": \"%s\",\n",
        k == COMPLETED ? "resumable" : k == RECLAIMED ? "reclaimed" : "not_needed");
    put(b, "    \"queued_at\": \"%s\",\n    \"launch_requested_at\": \"%s\",\n", q, l);
    put(b, "    \"started_at\": \"%s\",\n", s);
    int finished = k == COMPLETED || k == FAILED || k == CANCELLED || k == RECLAIMED;
    if (finished) {
        /* The pid the worker had; not running, so never looked at. */
        put(b, "    \"process_id\": %d,\n", 300000 + (int)(i % 30000));
        put(b, "    \"process_started_at\": \"%s\",\n", s);
        put(b, "    \"process_last_seen_at\": \"%s\",\n", p);
    }
    if (k == ACTIVE_OWN_THRESHOLDS)
        put(b, "    \"quiet_after_ms\": 10000,\n    \"stale_after_ms\": 300000,\n"
               "    \"timeout_after_ms\": 900000,\n");
    if (k == RECLAIMED) put(b, "    \"timed_out_at\": \"%s\",\n", p);
    if (finished) {
        stamp(r, sizeof r, progress + 200);
        put(b, "    \"returned_at\": \"%s\",\n", r);
        put(b, "    \"exit_code\": %d,\n", k == COMPLETED ? 0 : 1);
    }
    put(b, "    \"last_progress_at\": \"%s\"\n  }", p);
    if (k == COMPLETED) {
        put(b, ",\n  \"worker_result\": {\n    \"status\": \"completed\",\n");
        put(b, "    \"thread_id\": \"019a2d7a-%04x-7170-a661-%012llx\",\n",
            (unsigned)(i & 0xffff), (unsigned long long)(next() & 0xffffffffffffULL));
        put(b, "    \"assistant_message_preview\": \"Updated the %s handling and re-ran the "
               "tests: all pass.\",\n", AREAS[lane % 8]);
        put(b, "    \"total_token_usage\": {\n      \"input_tokens\": %d,\n      "
               "\"output_tokens\": %d\n    }\n  }",
            (int)below(200000), (int)below(20000));
    }
    put(b, "\n}\n");
}

static void live(struct buf *b, int n, long pid, int64_t launched, int64_t started,
                 int64_t progress) {
    char id[32], card[32], l[80], s[80], p[80];
    snprintf(id, sizeof id, "live-%04d", n);
    snprintf(card, sizeof card, "card-live-%02d", n / 8);
    stamp(l, sizeof l, launched);
    stamp(s, sizeof s, started);
    stamp(p, sizeof p, progress);
    head(b, id, card, n % 8, "implementation", 0, "running", "running", 0, l);
    put(b, "  \"worker_lifecycle\": {\n    \"state\": \"running_active\",\n"
           "    \"reclaim_state\": \"not_needed\",\n");
    put(b, "    \"queued_at\": \"%s\",\n    \"launch_requested_at\": \"%s\",\n", l, l);
    put(b, "    \"started_at\": \"%s\",\n    \"process_id\": %ld,\n", s, pid);
    put(b, "    \"process_started_at\": \"%s\",\n    \"last_progress_at\": \"%s\"\n  }\n}\n", s,
        p);
}

static void make_dirs(const char *run, char *dir, size_t size) {
    mkdir(run, 0755);
    snprintf(dir, size, "%s/delegations", run);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "gen: %s: %s\n", dir, strerror(errno));
        exit(1);
    }
}

int main(int argc, char **argv) {
    static struct buf b;
    char dir[4096], name[64];
    if (argc == 6 && strcmp(argv[2], "--live") == 0) {
        make_dirs(argv[1], dir, sizeof dir);
        int64_t launched = atoll(argv[3]), started = atoll(argv[4]), progress = atoll(argv[5]);
        long pid;
        int n = 0;
        while (scanf("%ld", &pid) == 1) {
            live(&b, n, pid, launched, started, progress);
            snprintf(name, sizeof name, "live-%04d.json", n);
            write_file(dir, name, &b);
            n++;
        }
        return 0;
    }
    if (argc != 4) {
        fprintf(stderr, "usage: gen RUN_DIR N NOW_EPOCH_S | gen RUN_DIR --live LAUNCH_MS "
                        "STARTED_MS PROGRESS_MS < PIDS\n");
        return 2;
    }
    long n = atol(argv[2]);
    int64_t now = (int64_t)atoll(argv[3]) * 1000;
    make_dirs(argv[1], dir, sizeof dir);
    size_t total = 0;
    for (long i = 0; i < n; i++) {
        /* Each document's randomness depends on its index only. */
        rng_state = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)(i + 1) * 0xbf58476d1ce4e5b9ULL);
        next();
        delegation(&b, i, now);
        snprintf(name, sizeof name, "del-%07ld.json", i);
        write_file(dir, name, &b);
        total += b.len;
    }
    fprintf(stderr, "gen: %ld delegations in %s, %.0f bytes each on average\n", n, dir,
            n ? (double)total / n : 0.0);
    return 0;
}
