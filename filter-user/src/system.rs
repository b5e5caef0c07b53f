//! The machine around the filter: privileges, bpffs, interface names, and the per-interface lock.

use std::{
    ffi::CString,
    fs::{self, File, OpenOptions},
    io,
    os::{
        fd::AsRawFd,
        unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt},
    },
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

pub use crate::hostfs::BPFFS;
use crate::{
    error::UsageError,
    hostfs::{self, Places},
};
/// How long a command waits for another one on the same interface.
const LOCK_WAIT: Duration = Duration::from_secs(10);

const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

/// Fails unless the process may load BPF programs and attach them to interfaces.
pub fn require_capabilities() -> Result<(), UsageError> {
    let caps = effective_capabilities().unwrap_or(0);
    let has = |cap: u32| caps & (1u64 << cap) != 0;
    if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
        return Err(UsageError::MissingCapability("CAP_BPF"));
    }
    if !has(CAP_NET_ADMIN) {
        return Err(UsageError::MissingCapability("CAP_NET_ADMIN"));
    }
    Ok(())
}

fn effective_capabilities() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// Whether bpffs is mounted at [`BPFFS`] in this mount namespace.
fn bpffs_mounted_here() -> bool {
    fs::read_to_string("/proc/self/mounts").is_ok_and(|mounts| {
        mounts.lines().any(|l| {
            let mut f = l.split_whitespace();
            let (_, point, kind) = (f.next(), f.next(), f.next());
            point == Some(BPFFS) && kind == Some("bpf")
        })
    })
}

/// Whether the bpffs gotofw pins in is there (see [`hostfs::places`]).
pub fn bpffs_mounted() -> bool {
    match hostfs::places() {
        Ok(places) if places.may_mount => bpffs_mounted_here(),
        // Resolved outside the host's mount namespace only when the host's bpffs is there.
        Ok(_) => true,
        Err(_) => false,
    }
}

/// Where gotofw's pins and locks are, with a bpffs mounted there: in the host's mount namespace
/// bpffs is mounted at [`BPFFS`] when it is not there; from any other one the host's is used,
/// and a command that cannot have it is refused (see [`hostfs`]).
pub fn ensure_bpffs() -> anyhow::Result<&'static Places> {
    let places = hostfs::places()?;
    if !places.may_mount || bpffs_mounted_here() {
        return Ok(places);
    }
    fs::create_dir_all(BPFFS).with_context(|| format!("creating {BPFFS}"))?;
    let src = CString::new("bpf").expect("no NUL");
    let target = CString::new(BPFFS).expect("no NUL");
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            src.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        bail!(
            "bpffs is not mounted at {BPFFS} and mounting it failed ({}): run `mount -t bpf bpf {BPFFS}`",
            io::Error::last_os_error()
        );
    }
    Ok(places)
}

/// Checks an interface name as the kernel would (1-15 bytes, no '/', no whitespace).
pub fn check_interface_name(name: &str) -> Result<(), UsageError> {
    let ok = !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && name != "."
        && name != ".."
        && !name.contains(['/', ':'])
        && !name.chars().any(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(UsageError::BadInterfaceName(name.to_owned()))
    }
}

/// The index of interface `name` in this network namespace.
pub fn ifindex(name: &str) -> Result<u32, UsageError> {
    check_interface_name(name)?;
    let c = CString::new(name).map_err(|_| UsageError::BadInterfaceName(name.to_owned()))?;
    // SAFETY: valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        Err(UsageError::UnknownInterface(name.to_owned()))
    } else {
        Ok(index)
    }
}

/// Identity of this thread's network namespace: the inode of its nsfs file.
pub fn netns_id() -> io::Result<u64> {
    Ok(fs::metadata("/proc/thread-self/ns/net")?.ino())
}

/// The nsfs inode of the kernel's initial network namespace (`PROC_NET_INIT_INO`).
const INIT_NETNS_INO: u64 = 0xEFFF_FFF9;

/// Whether this thread runs in the initial network namespace, or in the one of PID 1 (a
/// container's own).
fn in_init_netns() -> bool {
    let Ok(mine) = netns_id() else {
        return false;
    };
    mine == INIT_NETNS_INO || fs::metadata("/proc/1/ns/net").is_ok_and(|init| init.ino() == mine)
}

/// The suffix that tells this namespace's interfaces from another's with the same name: empty in
/// the initial namespace (or PID 1's), `:NETNS` elsewhere (`:` cannot occur in an interface name).
fn netns_suffix() -> String {
    if in_init_netns() {
        String::new()
    } else {
        netns_id().map_or_else(|_| ":unknown".to_owned(), |id| format!(":{id}"))
    }
}

/// The key of interface `name` in this namespace: names its pin directory and lock file.
pub fn pin_key(name: &str) -> String {
    format!("{name}{}", netns_suffix())
}

/// The pin directory of interface `name` in this namespace: `/sys/fs/bpf/gotofw/NAME`, or
/// `/sys/fs/bpf/gotofw/NAME:NETNS` outside the namespace of PID 1 (the host's bpffs as
/// [`hostfs::places`] reaches it).
pub fn pin_dir(name: &str) -> Result<PathBuf, UsageError> {
    key_dir(&pin_key(name))
}

/// The pin key for what an operator typed: an interface of this namespace, or an explicit
/// `NAME:NETNS` key (as `status` lists filters of other namespaces), to inspect or remove a filter
/// whose namespace is gone.
pub fn key_for(arg: &str) -> Result<String, UsageError> {
    if let Some((name, netns)) = arg.rsplit_once(':') {
        check_interface_name(name)?;
        if netns.is_empty() || !netns.bytes().all(|b| b.is_ascii_digit()) {
            return Err(UsageError::BadInterfaceName(arg.to_owned()));
        }
        return Ok(arg.to_owned());
    }
    check_interface_name(arg)?;
    Ok(pin_key(arg))
}

/// The pin directory of pin key `key`.
pub fn key_dir(key: &str) -> Result<PathBuf, UsageError> {
    Ok(hostfs::places()?.pin_root().join(key))
}

/// Pin keys among `keys` that belong to other network namespaces.
pub fn foreign_keys(keys: impl IntoIterator<Item = String>) -> Vec<String> {
    let suffix = netns_suffix();
    let mut out: Vec<String> = keys
        .into_iter()
        .filter(|key| {
            if suffix.is_empty() {
                key.contains(':')
            } else {
                !key.ends_with(&suffix)
            }
        })
        .collect();
    out.sort();
    out
}

/// The interface names of this namespace among the pin directory names `keys`.
pub fn own_interfaces(keys: impl IntoIterator<Item = String>) -> Vec<String> {
    let suffix = netns_suffix();
    let mut out: Vec<String> = keys
        .into_iter()
        .filter_map(|key| {
            if suffix.is_empty() {
                (!key.contains(':')).then_some(key)
            } else {
                key.strip_suffix(&suffix).map(str::to_owned)
            }
        })
        .collect();
    out.sort();
    out
}

/// Creates `path` (and its parents) readable by root only.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

/// An exclusive lock on one interface's gotofw state, held until dropped. Two gotofw commands on
/// the same interface run one after the other. The lock file goes when the lock is let go.
#[derive(Debug)]
pub struct InterfaceLock {
    /// Holds the lock: closing it lets go.
    file: File,
    path: PathBuf,
}

/// One attempt at the lock.
enum Attempt {
    Held(InterfaceLock),
    Busy,
    /// Locked a file its last holder removed meanwhile: try again with a new one.
    Stale,
}

impl InterfaceLock {
    /// Waits (up to ten seconds) for the lock of pin key `key` (see [`pin_key`]).
    pub fn acquire(key: &str) -> anyhow::Result<Self> {
        let path = Self::path(key)?;
        let start = Instant::now();
        loop {
            match Self::attempt(&path)? {
                Attempt::Held(lock) => return Ok(lock),
                Attempt::Stale => continue,
                Attempt::Busy => {}
            }
            if start.elapsed() > LOCK_WAIT {
                bail!(
                    "another gotofw command has held {} for {}s: wait for it to finish, or find it with `fuser {}`",
                    path.display(),
                    LOCK_WAIT.as_secs(),
                    path.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The lock of pin key `key` if no other command holds it, without waiting.
    pub fn try_acquire(key: &str) -> anyhow::Result<Option<Self>> {
        let path = Self::path(key)?;
        // A file can go stale once per holder that lets go meanwhile; a few tries settle it.
        for _ in 0..8 {
            match Self::attempt(&path)? {
                Attempt::Held(lock) => return Ok(Some(lock)),
                Attempt::Busy => return Ok(None),
                Attempt::Stale => {}
            }
        }
        Ok(None)
    }

    /// The drop-log reader lock of pin key `key`, with this process's id written in it, when no
    /// other `gotofw log` of that filter holds it; otherwise the holder's pid (`None` when it has
    /// not written it yet). One reader per filter: a sample one reader takes is gone for others.
    pub fn try_acquire_log_reader(key: &str) -> anyhow::Result<Result<Self, Option<u32>>> {
        use std::io::Write as _;
        let dir = hostfs::places()?.lock_dir.join("log");
        create_private_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{key}.lock"));
        for _ in 0..8 {
            match Self::attempt(&path)? {
                Attempt::Held(lock) => {
                    lock.file.set_len(0)?;
                    (&lock.file).write_all(std::process::id().to_string().as_bytes())?;
                    return Ok(Ok(lock));
                }
                Attempt::Busy => {
                    let pid = fs::read_to_string(&path)
                        .ok()
                        .and_then(|text| text.trim().parse().ok());
                    return Ok(Err(pid));
                }
                Attempt::Stale => {}
            }
        }
        Ok(Err(None))
    }

    fn path(key: &str) -> anyhow::Result<PathBuf> {
        let dir = &hostfs::places()?.lock_dir;
        create_private_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(dir.join(format!("{key}.lock")))
    }

    fn attempt(path: &Path) -> anyhow::Result<Attempt> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("opening lock file {}", path.display()))?;
        // SAFETY: a valid open descriptor.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Ok(Attempt::Busy);
            }
            return Err(err).with_context(|| format!("locking {}", path.display()));
        }
        // The holder before us removes the file as it lets go: a lock on a file no longer at
        // `path` is one nobody else sees.
        let ours = file.metadata()?;
        let same = fs::metadata(path).is_ok_and(|m| m.dev() == ours.dev() && m.ino() == ours.ino());
        Ok(if same {
            Attempt::Held(Self {
                file,
                path: path.to_owned(),
            })
        } else {
            Attempt::Stale
        })
    }
}

impl Drop for InterfaceLock {
    /// Removes the lock file, still holding the lock; a command that opened it meanwhile sees
    /// that it is gone once it gets the lock, and opens a new one.
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A Unix time as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn format_utc(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days.cast_signed() + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_checked_like_the_kernel() {
        assert!(check_interface_name("eth0").is_ok());
        assert!(check_interface_name("a23456789012345").is_ok());
        for bad in ["", "a234567890123456", "a/b", "a b", ".."] {
            assert!(check_interface_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(1_795_000_000), "2026-11-18 11:06:40 UTC");
    }

    #[test]
    fn unknown_interface_is_a_usage_error() {
        let err = ifindex("gfw-nosuch0").unwrap_err();
        assert!(err.to_string().contains("gfw-nosuch0"));
    }
}
