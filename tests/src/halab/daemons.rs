//! keepalived and conntrackd on the gateways: their configurations (the README shows them as an
//! operator would write them), the notify script, starting and stopping them.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::Path,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use super::{Gateway, HaLab, LAN_VIP, POLL, WAN_VIP};
use crate::daemon::Daemon;

/// keepalived's advertisement interval (VRRP version 3 takes hundredths of a second): a backup
/// takes over after three missed adverts plus a skew of under one interval.
pub const ADVERT_INT: &str = "0.5";
/// How long conntrackd may take to answer on its socket.
const CONNTRACKD_READY: Duration = Duration::from_secs(10);
/// The notify script, Debian's example with this gateway's paths.
const NOTIFY_SCRIPT: &str = include_str!("primary-backup.sh");

/// The conntrackd configuration of `gw`: FTFW over UDP on the sync link, its own socket, lock
/// and log in `dir`.
fn conntrackd_conf(gw: &Gateway, dir: &Path) -> String {
    let path = |file: &str| dir.join(file).display().to_string();
    format!(
        "Sync {{\n\
         \tMode FTFW {{\n\
         \t}}\n\
         \tUDP {{\n\
         \t\tIPv4_address {own}\n\
         \t\tIPv4_Destination_Address {peer}\n\
         \t\tPort 3780\n\
         \t\tInterface sync0\n\
         \t\tSndSocketBuffer 1249280\n\
         \t\tRcvSocketBuffer 1249280\n\
         \t\tChecksum on\n\
         \t}}\n\
         }}\n\
         General {{\n\
         \tHashSize 8192\n\
         \tHashLimit 65536\n\
         \tLogFile {log}\n\
         \tSyslog off\n\
         \tLockFile {lock}\n\
         \tUNIX {{\n\
         \t\tPath {ctl}\n\
         \t}}\n\
         \tNetlinkBufferSize 2097152\n\
         \tNetlinkBufferSizeMaxGrowth 8388608\n\
         \tFilter From Userspace {{\n\
         \t\tProtocol Accept {{\n\
         \t\t\tTCP\n\
         \t\t\tUDP\n\
         \t\t}}\n\
         \t\tAddress Ignore {{\n\
         \t\t\tIPv4_address 127.0.0.1\n\
         \t\t\tIPv4_address {own}\n\
         \t\t\tIPv4_address {peer}\n\
         \t\t}}\n\
         \t}}\n\
         }}\n",
        own = gw.sync_addr,
        peer = gw.peer_sync_addr,
        log = path("conntrackd.log"),
        lock = path("conntrackd.lock"),
        ctl = path("conntrackd.ctl"),
    )
}

/// The keepalived configuration of `gw`: instances `LAN` (adverts on `lan0`) and `WAN`
/// (adverts on the sync link, tracking the WAN interface) in one sync group, whose
/// transitions run the notify script.
fn keepalived_conf(gw: &Gateway, wan: &str, script: &Path) -> String {
    let script = script.display();
    let prio = gw.priority;
    format!(
        "global_defs {{\n\
         \trouter_id {name}\n\
         \tvrrp_version 3\n\
         \tscript_user root\n\
         }}\n\
         vrrp_sync_group GOTOFW {{\n\
         \tgroup {{\n\
         \t\tLAN\n\
         \t\tWAN\n\
         \t}}\n\
         \tnotify_master \"{script} primary\"\n\
         \tnotify_backup \"{script} backup\"\n\
         \tnotify_fault \"{script} fault\"\n\
         }}\n\
         vrrp_instance LAN {{\n\
         \tstate BACKUP\n\
         \tinterface lan0\n\
         \tvirtual_router_id 51\n\
         \tpriority {prio}\n\
         \tadvert_int {ADVERT_INT}\n\
         \tvirtual_ipaddress {{\n\
         \t\t{LAN_VIP}/24 dev lan0\n\
         \t}}\n\
         }}\n\
         vrrp_instance WAN {{\n\
         \tstate BACKUP\n\
         \tinterface sync0\n\
         \ttrack_interface {{\n\
         \t\t{wan}\n\
         \t}}\n\
         \tvirtual_router_id 52\n\
         \tpriority {prio}\n\
         \tadvert_int {ADVERT_INT}\n\
         \tvirtual_ipaddress {{\n\
         \t\t{WAN_VIP}/24 dev {wan}\n\
         \t}}\n\
         }}\n",
        name = gw.name,
    )
}

impl HaLab {
    /// Starts conntrackd on gateway `index` and waits until it answers on its socket.
    pub(super) fn start_conntrackd(&mut self, index: usize) -> Result<()> {
        let gw = &mut self.gateways[index];
        let conf = gw.dir.join("conntrackd.conf");
        fs::write(&conf, conntrackd_conf(gw, &gw.dir))?;
        let conf_arg = conf.display().to_string();
        let daemon = Daemon::spawn(
            &gw.ns,
            &format!("{} conntrackd", gw.name),
            &self.programs.conntrackd,
            &["-C".to_owned(), conf_arg.clone()],
            &gw.dir.join("conntrackd.out"),
        )?;
        gw.conntrackd = Some(daemon);
        let deadline = Instant::now() + CONNTRACKD_READY;
        let program = self.programs.conntrackd.display().to_string();
        loop {
            let output = gw.ns.exec(&program, ["-C", &conf_arg, "-s"])?;
            if output.status.success() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let tail = gw
                    .conntrackd
                    .as_ref()
                    .map(Daemon::log_tail)
                    .unwrap_or_default();
                bail!(
                    "conntrackd on {} does not answer after {} s: {}; its log:\n{tail}",
                    gw.name,
                    CONNTRACKD_READY.as_secs(),
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
            thread::sleep(POLL);
        }
    }
}

impl Gateway {
    /// Writes the notify script and keepalived configuration and starts keepalived (VRRP
    /// only, in the foreground, logging to its log file).
    pub(super) fn start_keepalived(
        &self,
        keepalived: &Path,
        conntrackd: &Path,
        wan: &str,
    ) -> Result<()> {
        let gw = self;
        let dir = gw.dir.clone();
        let path = |file: &str| dir.join(file).display().to_string();
        let script = gw.dir.join("primary-backup.sh");
        let text = NOTIFY_SCRIPT
            .replace("@CONNTRACKD@", &conntrackd.display().to_string())
            .replace("@LOCK@", &path("conntrackd.lock"))
            .replace("@CONFIG@", &path("conntrackd.conf"))
            .replace("@LOG@", &path("notify.log"));
        fs::write(&script, text)?;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o700))?;
        let conf = gw.dir.join("keepalived.conf");
        fs::write(&conf, keepalived_conf(gw, wan, &script))?;
        let args: Vec<String> = [
            "--dont-fork",
            "--log-console",
            "--log-detail",
            "--vrrp",
            "--use-file",
            &conf.display().to_string(),
            "--pid",
            &path("keepalived.pid"),
            "--vrrp_pid",
            &path("keepalived-vrrp.pid"),
        ]
        .map(str::to_owned)
        .to_vec();
        let daemon = Daemon::spawn(
            &gw.ns,
            &format!("{} keepalived", gw.name),
            keepalived,
            &args,
            &gw.dir.join("keepalived.out"),
        )
        .context("starting keepalived")?;
        *gw.keepalived.lock().expect("keepalived lock") = Some(daemon);
        Ok(())
    }

    /// Stops keepalived with SIGTERM (it gives up its addresses with a priority-0 advert) and
    /// waits until it has exited.
    pub(super) fn stop_keepalived(&self) -> Result<()> {
        let gw = self;
        let mut daemon = gw
            .keepalived
            .lock()
            .expect("keepalived lock")
            .take()
            .context("keepalived is not running")?;
        match daemon.signal_and_wait(libc::SIGTERM, Duration::from_secs(5))? {
            Some(_) => Ok(()),
            None => bail!(
                "keepalived on {} did not exit within 5 s of SIGTERM",
                gw.name
            ),
        }
    }
}
