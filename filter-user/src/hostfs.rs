//! Where gotofw keeps its pins and locks when it runs in a mount namespace of its own.
//!
//! The pins must outlive the command that makes them, and every command must find the same ones
//! however it entered the network namespace. `ip netns exec` gives the command a private mount
//! namespace with a fresh `/sys` (no bpffs in it); a bpffs mounted there would die with the
//! command, pins and filter with it. So gotofw never mounts bpffs outside the host's mount
//! namespace: there it reaches the host's bpffs through `/proc/PID/root` of a process of the host
//! (PID 1, or when PID 1 cannot be inspected, the kernel thread `kthreadd`, which lives in the
//! initial mount namespace), and refuses when it cannot. The host's own `/sys/fs/bpf` seen from
//! here (the bind mounts of a systemd service) is used as it is.
//!
//! The places are resolved once per process ([`places`]).

use std::{
    ffi::CString,
    fs, io,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::OnceLock,
};

use crate::error::UsageError;

/// Where the host's bpffs is mounted (seen from the host's mount namespace).
pub const BPFFS: &str = "/sys/fs/bpf";
/// Where the host keeps the per-interface lock files.
const LOCK_DIR: &str = "/run/gotofw";
/// `statfs` type of bpffs.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
/// The nsfs inode of the initial mount namespace (`PROC_MNT_INIT_INO`, Linux 6.16 and later).
const INIT_MNTNS_INO: u64 = 0xEFFF_FFF8;
/// `PF_KTHREAD` in the flags of `/proc/PID/stat`.
const PF_KTHREAD: u64 = 0x0020_0000;

/// The directories gotofw uses, as this process reaches them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Places {
    /// The bpffs: `/sys/fs/bpf`, or `/proc/PID/root/sys/fs/bpf` from a private mount namespace.
    pub bpffs: PathBuf,
    /// The lock directory: `/run/gotofw`, or `/proc/PID/root/run/gotofw`.
    pub lock_dir: PathBuf,
    /// Whether this process runs in the host's mount namespace, where a missing bpffs may be
    /// mounted.
    pub may_mount: bool,
}

impl Places {
    /// Directory of gotofw's pins; one subdirectory per interface.
    pub fn pin_root(&self) -> PathBuf {
        self.bpffs.join("gotofw")
    }

    /// Directory of half-made and half-removed pin directories (bpffs refuses names that start
    /// with a dot, so they cannot hide inside [`Places::pin_root`]).
    pub fn pin_staging(&self) -> PathBuf {
        self.bpffs.join("gotofw-staging")
    }
}

/// The places of this process, resolved at its first call.
pub fn places() -> Result<&'static Places, UsageError> {
    static PLACES: OnceLock<Result<Places, Refusal>> = OnceLock::new();
    PLACES
        .get_or_init(|| resolve(&Probe::system()))
        .as_ref()
        .map_err(Into::into)
}

/// Why the pins cannot be had from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A private mount namespace, and the host has no bpffs.
    NoHostBpffs,
    /// A private mount namespace (or one that cannot be told from one), and no process of the
    /// host can be inspected.
    HostMountsUnreachable,
}

impl From<&Refusal> for UsageError {
    fn from(refusal: &Refusal) -> Self {
        match refusal {
            Refusal::NoHostBpffs => Self::NoHostBpffs,
            Refusal::HostMountsUnreachable => Self::HostMountsUnreachable,
        }
    }
}

/// What [`resolve`] looks at, so that its decisions can be tested without namespaces.
#[derive(Debug, Clone, Default)]
pub struct Probe {
    /// The nsfs inode of this process's mount namespace.
    pub own_mntns: Option<u64>,
    /// The host's process that could be inspected (`/proc/1` or `/proc/2`), and the nsfs inode
    /// of its mount namespace.
    pub host: Option<(PathBuf, u64)>,
    /// `(st_dev, st_ino)` of `/sys/fs/bpf` here, if it is a bpffs.
    pub local_bpffs: Option<(u64, u64)>,
    /// Whether `/sys/fs/bpf` here is a mount that follows one of another mount namespace
    /// (`master:` in mountinfo), as systemd's private mounts do.
    pub local_is_slave: bool,
    /// `(st_dev, st_ino)` of the host's `/sys/fs/bpf`, if it is a bpffs.
    pub host_bpffs: Option<(u64, u64)>,
    /// Whether `/run` here is the host's `/run`.
    pub same_run: bool,
}

impl Probe {
    /// Looks at this machine.
    fn system() -> Self {
        let own_mntns = fs::metadata("/proc/self/ns/mnt").ok().map(|m| m.ino());
        let host = host_process();
        let host_root = host.as_ref().map(|(dir, _)| dir.join("root"));
        let host_bpffs = host_root
            .as_ref()
            .and_then(|root| bpffs_identity(&root.join(BPFFS.trim_start_matches('/'))));
        let same_run = host_root
            .as_ref()
            .is_some_and(|root| same_file(Path::new("/run"), &root.join("run")).unwrap_or(false));
        Self {
            own_mntns,
            host,
            local_bpffs: bpffs_identity(Path::new(BPFFS)),
            local_is_slave: is_slave_mount(BPFFS),
            host_bpffs,
            same_run,
        }
    }
}

/// Decides where the pins and locks are (see the module's documentation).
pub fn resolve(probe: &Probe) -> Result<Places, Refusal> {
    let here = Places {
        bpffs: PathBuf::from(BPFFS),
        lock_dir: PathBuf::from(LOCK_DIR),
        may_mount: false,
    };
    let Some((host_dir, host_mntns)) = &probe.host else {
        // No process of the host can be inspected (a service without CAP_SYS_PTRACE): trust the
        // initial mount namespace, and a bpffs that follows another namespace's mount.
        if probe.own_mntns == Some(INIT_MNTNS_INO) {
            return Ok(Places {
                may_mount: true,
                ..here
            });
        }
        if probe.local_bpffs.is_some() && probe.local_is_slave {
            return Ok(here);
        }
        return Err(Refusal::HostMountsUnreachable);
    };
    if probe.own_mntns == Some(*host_mntns) {
        return Ok(Places {
            may_mount: true,
            ..here
        });
    }
    let Some(host_bpffs) = probe.host_bpffs else {
        return Err(Refusal::NoHostBpffs);
    };
    let root = host_dir.join("root");
    Ok(Places {
        bpffs: if probe.local_bpffs == Some(host_bpffs) {
            here.bpffs
        } else {
            root.join(BPFFS.trim_start_matches('/'))
        },
        lock_dir: if probe.same_run {
            here.lock_dir
        } else {
            root.join(LOCK_DIR.trim_start_matches('/'))
        },
        may_mount: false,
    })
}

/// PID 1, or when it cannot be inspected the kernel thread PID 2 (kthreadd), with the nsfs inode
/// of its mount namespace; `None` when neither can be.
fn host_process() -> Option<(PathBuf, u64)> {
    ["1", "2"].into_iter().find_map(|pid| {
        let dir = Path::new("/proc").join(pid);
        if pid == "2" && !is_kernel_thread(&dir) {
            return None;
        }
        let mntns = fs::metadata(dir.join("ns/mnt")).ok()?.ino();
        fs::metadata(dir.join("root/")).ok()?;
        Some((dir, mntns))
    })
}

/// Whether `/proc/PID` is a kernel thread (`PF_KTHREAD` in its flags).
fn is_kernel_thread(dir: &Path) -> bool {
    let Ok(stat) = fs::read_to_string(dir.join("stat")) else {
        return false;
    };
    // The flags are the 9th field; the 2nd, `(comm)`, may hold spaces.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(6))
        .and_then(|flags| flags.parse::<u64>().ok())
        .is_some_and(|flags| flags & PF_KTHREAD != 0)
}

/// `(st_dev, st_ino)` of `path` when it is the root of a bpffs.
fn bpffs_identity(path: &Path) -> Option<(u64, u64)> {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: zeroed statfs is valid; `c` is a NUL-terminated path.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and output buffer.
    if unsafe { libc::statfs(c.as_ptr(), &raw mut st) } != 0 {
        return None;
    }
    // `f_type` is narrower than i64 on some targets.
    #[allow(clippy::useless_conversion)]
    if i64::from(st.f_type) != BPF_FS_MAGIC {
        return None;
    }
    let meta = fs::metadata(path).ok()?;
    Some((meta.dev(), meta.ino()))
}

fn same_file(a: &Path, b: &Path) -> io::Result<bool> {
    let (a, b) = (fs::metadata(a)?, fs::metadata(b)?);
    Ok(a.dev() == b.dev() && a.ino() == b.ino())
}

/// Whether the mount at `point` (the last one there, which hides those under it) is a bpffs that
/// follows a mount of another peer group (`master:N` in `/proc/self/mountinfo`).
fn is_slave_mount(point: &str) -> bool {
    fs::read_to_string("/proc/self/mountinfo").is_ok_and(|info| {
        info.lines()
            .rfind(|line| line.split(' ').nth(4) == Some(point))
            .is_some_and(|line| mountinfo_is_slave(line, point))
    })
}

/// Whether mountinfo `line` is a mount at `point` with a `master:` tag. Its fields: ID, parent,
/// major:minor, root, mount point, options, optional tags..., `-`, type, source, options.
fn mountinfo_is_slave(line: &str, point: &str) -> bool {
    let fields: Vec<&str> = line.split(' ').collect();
    if fields.get(4) != Some(&point) {
        return false;
    }
    let tags = fields.iter().skip(6).take_while(|f| **f != "-");
    let tags: Vec<&&str> = tags.collect();
    let kind = fields
        .iter()
        .skip_while(|f| **f != "-")
        .nth(1)
        .copied()
        .unwrap_or("");
    kind == "bpf" && tags.iter().any(|t| t.starts_with("master:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST_BPFFS: (u64, u64) = (40, 1);

    fn host(mntns: u64) -> (PathBuf, u64) {
        (PathBuf::from("/proc/1"), mntns)
    }

    #[test]
    fn the_host_namespace_uses_its_own_mount_and_may_mount_it() {
        let probe = Probe {
            own_mntns: Some(7),
            host: Some(host(7)),
            ..Probe::default()
        };
        let places = resolve(&probe).unwrap();
        assert_eq!(places.pin_root(), Path::new("/sys/fs/bpf/gotofw"));
        assert_eq!(places.lock_dir, Path::new("/run/gotofw"));
        assert!(places.may_mount);
    }

    #[test]
    fn ip_netns_exec_reaches_the_host_bpffs_through_proc() {
        // A fresh /sys: /sys/fs/bpf here is no bpffs; /run is the host's.
        let probe = Probe {
            own_mntns: Some(8),
            host: Some(host(7)),
            host_bpffs: Some(HOST_BPFFS),
            same_run: true,
            ..Probe::default()
        };
        let places = resolve(&probe).unwrap();
        assert_eq!(
            places.pin_root(),
            Path::new("/proc/1/root/sys/fs/bpf/gotofw")
        );
        assert_eq!(
            places.pin_staging(),
            Path::new("/proc/1/root/sys/fs/bpf/gotofw-staging")
        );
        assert_eq!(places.lock_dir, Path::new("/run/gotofw"));
        assert!(!places.may_mount);
        // A bpffs of its own here is not the host's: still the host's, and its /run too.
        let own = Probe {
            local_bpffs: Some((41, 1)),
            same_run: false,
            ..probe
        };
        let places = resolve(&own).unwrap();
        assert_eq!(places.bpffs, Path::new("/proc/1/root/sys/fs/bpf"));
        assert_eq!(places.lock_dir, Path::new("/proc/1/root/run/gotofw"));
    }

    #[test]
    fn the_host_bpffs_seen_here_is_used_as_it_is() {
        let probe = Probe {
            own_mntns: Some(8),
            host: Some(host(7)),
            host_bpffs: Some(HOST_BPFFS),
            local_bpffs: Some(HOST_BPFFS),
            same_run: true,
            ..Probe::default()
        };
        let places = resolve(&probe).unwrap();
        assert_eq!(places.pin_root(), Path::new("/sys/fs/bpf/gotofw"));
        assert!(!places.may_mount);
    }

    #[test]
    fn no_host_bpffs_from_a_private_namespace_is_refused() {
        let probe = Probe {
            own_mntns: Some(8),
            host: Some(host(7)),
            local_bpffs: Some((41, 1)),
            ..Probe::default()
        };
        let err = resolve(&probe).unwrap_err();
        assert_eq!(err, Refusal::NoHostBpffs);
        let message = UsageError::from(&err).to_string();
        assert!(
            message.contains("mount -t bpf bpf /sys/fs/bpf"),
            "{message}"
        );
    }

    #[test]
    fn without_a_host_process_only_the_initial_namespace_or_a_followed_mount_is_trusted() {
        let init = Probe {
            own_mntns: Some(INIT_MNTNS_INO),
            ..Probe::default()
        };
        assert!(resolve(&init).unwrap().may_mount);
        let service = Probe {
            own_mntns: Some(8),
            local_bpffs: Some(HOST_BPFFS),
            local_is_slave: true,
            ..Probe::default()
        };
        let places = resolve(&service).unwrap();
        assert_eq!(places.bpffs, Path::new("/sys/fs/bpf"));
        assert!(!places.may_mount);
        let private = Probe {
            local_is_slave: false,
            ..service
        };
        let err = UsageError::from(&resolve(&private).unwrap_err()).to_string();
        assert!(err.contains("nsenter --net="), "{err}");
    }

    #[test]
    fn mountinfo_tags() {
        let slave = "80 30 0:40 / /sys/fs/bpf rw,nosuid master:12 - bpf bpf rw,mode=700";
        assert!(mountinfo_is_slave(slave, "/sys/fs/bpf"));
        assert!(!mountinfo_is_slave(slave, "/sys"));
        let shared = "80 30 0:40 / /sys/fs/bpf rw shared:12 - bpf bpf rw";
        assert!(!mountinfo_is_slave(shared, "/sys/fs/bpf"));
        let tmpfs = "80 30 0:40 / /sys/fs/bpf rw master:3 - tmpfs none rw";
        assert!(!mountinfo_is_slave(tmpfs, "/sys/fs/bpf"));
    }
}
