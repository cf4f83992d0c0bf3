//! Build script: tells `flatline --version` the commit it was built from and that commit's
//! date, when git and the repository's `.git` are there. Anything missing or failing
//! (a source tarball, no git, a repository git will not read) leaves just the version: this
//! script never fails the build.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    // Without this line cargo would rerun the script after any change in the package.
    println!("cargo:rerun-if-changed=build.rs");
    let Some(manifest) = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from) else {
        return;
    };
    // `.git` is a directory in a clone and a file in a worktree.
    if !manifest.join(".git").exists() {
        return;
    }
    let git = |args: &[&str]| -> Option<String> {
        let output = Command::new("git")
            .args(args)
            .current_dir(&manifest)
            .output()
            .ok()?;
        let text = String::from_utf8(output.stdout).ok()?;
        let text = text.trim();
        (output.status.success() && !text.is_empty()).then(|| text.to_string())
    };
    // Rebuild when HEAD moves: HEAD itself, the branch it names, the packed refs.
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name]) {
            let path = manifest.join(Path::new(&path));
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    let Some(commit) = git(&["rev-parse", "--short", "HEAD"])
        .filter(|commit| commit.len() <= 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()))
    else {
        return;
    };
    println!("cargo:rustc-env=FLATLINE_COMMIT={commit}");
    // The commit's date (YYYY-MM-DD): the same for every build of one commit.
    if let Some(date) = git(&["log", "-1", "--format=%cs", "HEAD"])
        .filter(|date| date.len() == 10 && date.bytes().all(|b| b.is_ascii_digit() || b == b'-'))
    {
        println!("cargo:rustc-env=FLATLINE_COMMIT_DATE={date}");
    }
}
