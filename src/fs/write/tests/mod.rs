use super::*;
use crate::fs::FileMeta;
use crate::fs::group::*;
use crate::fs::lock::*;
use crate::fs::write::temp::{is_temp_name, random_temp_name, remove_stale_temps, temp_name};
use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A fresh directory under the system temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "flatline-store-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Scratch(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn dir(&self) -> Dir {
        Dir::open(&self.0).unwrap()
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn assert_no_temp(&self) {
        let names = self.names();
        assert!(
            names.iter().all(|name| !name.ends_with(".tmp")),
            "temp left behind: {names:?}"
        );
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn is_root() -> bool {
    files::effective_uid() == 0
}

fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, Permissions::from_mode(mode)).unwrap();
}

fn mkfifo(path: &Path) {
    let cpath = CString::new(path.as_os_str().as_bytes()).unwrap();
    crate::sys::fd::mkfifo(&cpath, 0o600).unwrap();
}

fn name(text: &str) -> &OsStr {
    OsStr::new(text)
}

mod lock;
mod replace;
mod temp;
