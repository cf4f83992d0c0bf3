//! The one table of flags: names, applicability, value names and docs (the commands are in
//! `commands`; the table itself is in two parts, `judging` and `tools`).

mod judging;
mod tools;

/// Identifies a flag in the table; `apply` gives each its meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagId {
    Format,
    Now,
    QuietAfter,
    StaleAfter,
    TimeoutAfter,
    StuckAfter,
    MaxRuntime,
    LaunchTimeout,
    MaxClockSkew,
    TaskCard,
    State,
    Summary,
    Check,
    Settle,
    DryRun,
    All,
    AllowOutsidePaths,
    MaxStreamRead,
    Wait,
    LockGroup,
    Deadline,
    Output,
    Grace,
    KillWait,
    OnlyProcess,
    AllowForeignUid,
    AllowNestedPidns,
    IdentitySlack,
    MaxSpawnDelay,
    BusyCpu,
    BusyIo,
    BusyLimit,
    ActivityWindow,
    NoActivity,
    HeartbeatStale,
    HeartbeatDead,
    RunId,
    BeatStatus,
    BeatName,
    Every,
    WhilePid,
    Quiet,
    Help,
    Version,
    Generate,
    RunDir,
    Id,
    Stream,
    Stderr,
    Stdin,
    Tee,
    NoWatch,
    CheckUnit,
    Delegation,
    FinalizeAs,
    Note,
    Attention,
    Force,
    Watch,
    Color,
}

#[derive(Clone, Copy)]
pub struct Flag {
    pub id: FlagId,
    pub long: &'static str,
    pub short: Option<char>,
    /// The value's name in synopses; `None` for a switch.
    pub value: Option<&'static str>,
    /// The commands it applies to (a bit set); 0 means "not a command option" (help, version).
    pub commands: u32,
    /// One line for `--help`.
    pub about: &'static str,
    /// The full description for `CMD --help` and the man page.
    pub doc: &'static str,
}

/// Every flag, in `--help` order: the two parts of the table, one after the other.
pub const FLAGS: &[Flag] = &TABLE;

const TABLE: [Flag; judging::JUDGING.len() + tools::TOOLS.len()] =
    concat(judging::JUDGING, tools::TOOLS);

const fn concat<const N: usize>(a: &[Flag], b: &[Flag]) -> [Flag; N] {
    let mut out = [a[0]; N];
    let mut i = 0;
    while i < N {
        out[i] = if i < a.len() { a[i] } else { b[i - a.len()] };
        i += 1;
    }
    out
}
