//! [`TunLab`]: a WAN without a link-layer header. Two tun devices, one in a gateway namespace and
//! one in an "internet" namespace, joined by a relay in the test process that copies every
//! packet one reads to the other; the gateway's device can report another link type (PPP,
//! raw-IP, ... through `TUNSETLINK`), as a PPP link, a WireGuard tunnel or an LTE modem does.
//!
//! ```text
//! gw (203.0.113.2/24) wan =tun= relay =tun= isp inet (203.0.113.1/24, and
//!                                               68.64.0.10, 23.239.255.254, 198.51.100.10 /32)
//! ```
//!
//! The same addresses and routes as [`WanLab`](crate::WanLab), so the same servers and probes
//! work; IPv6 is off in both namespaces. A tun device lives as long as its file descriptor (none is persistent): `Drop` stops the
//! relay, which closes both, then deletes the namespaces.

use std::{
    ffi::CString,
    io,
    net::IpAddr,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::{self, JoinHandle},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use crate::{
    GW_ADDR, GW_ROUTES, INET_ADDR, Netns, OUTSIDE, TURN_A, TURN_B, VethPair, addr_add, link_up,
    route_add, unique_name, veth_pair,
};

/// The internet side's IPv6 server address, once [`TunLab::enable_ipv6`] ran.
pub const SERVER6: std::net::Ipv6Addr = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 0x10);

/// `ARPHRD_NONE`: a tun device's own link type (`link/none`).
pub const ARPHRD_NONE: u16 = 0xfffe;
/// `ARPHRD_PPP` (`link/ppp`).
pub const ARPHRD_PPP: u16 = 512;
/// `ARPHRD_RAWIP` (`link/[519]`): raw-IP modems (qmi_wwan, mhi).
pub const ARPHRD_RAWIP: u16 = 519;
/// `ARPHRD_TUNNEL` (`link/ipip`): an IPIP tunnel.
pub const ARPHRD_TUNNEL: u16 = 768;
/// `ARPHRD_IPGRE` (`link/gre`): a GRE tunnel.
pub const ARPHRD_IPGRE: u16 = 778;

/// `TUNSETIFF`: `_IOW('T', 202, int)`.
const TUNSETIFF: libc::Ioctl = 0x4004_54ca;
/// `TUNSETLINK`: `_IOW('T', 205, int)`; the device must be down.
const TUNSETLINK: libc::Ioctl = 0x4004_54cd;
/// `IFF_TUN`: IP packets, no Ethernet header.
const IFF_TUN: libc::c_short = 0x0001;
/// `IFF_NO_PI`: no packet-information prefix before each packet.
const IFF_NO_PI: libc::c_short = 0x1000;

/// How long the relay waits for a packet before it looks at its stop flag.
const RELAY_POLL_MS: libc::c_int = 50;
/// Packets the relay copies in one go from one device before it looks at the other.
const RELAY_BURST: usize = 64;

/// A tun device (`IFF_TUN | IFF_NO_PI`) that lives as long as this value: closing the
/// descriptor deletes the device.
#[derive(Debug)]
pub struct Tun {
    fd: OwnedFd,
    name: String,
}

impl Tun {
    /// Creates tun device `name` in `ns`, down, of link type `link_type` (`ARPHRD_*`; tun devices
    /// start as [`ARPHRD_NONE`]). Its descriptor is non-blocking.
    pub fn new(ns: &Netns, name: &str, link_type: u16) -> Result<Self> {
        // The device is created in the network namespace of the thread that opens the clone
        // device.
        let tun = ns
            .run(|| open_tun(name))
            .with_context(|| format!("creating tun device {name} in {}", ns.name()))?;
        if link_type != ARPHRD_NONE {
            tun.set_link_type(link_type)?;
        }
        Ok(tun)
    }

    /// Gives the device link type `link_type` (`TUNSETLINK`; the device must be down).
    pub fn set_link_type(&self, link_type: u16) -> Result<()> {
        // SAFETY: TUNSETLINK takes the link type as the argument itself.
        let rc = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                TUNSETLINK,
                libc::c_ulong::from(link_type),
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error())
                .with_context(|| format!("TUNSETLINK {link_type} on {}", self.name));
        }
        Ok(())
    }

    /// The device's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Opens `/dev/net/tun` and makes it device `name` (in the calling thread's namespace).
fn open_tun(name: &str) -> io::Result<Tun> {
    let c_name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let bytes = c_name.as_bytes_with_nul();
    if bytes.len() > libc::IFNAMSIZ {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: a NUL-terminated path and plain flags; the result is checked.
    let raw = unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a new descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = src.cast_signed();
    }
    req.ifr_ifru.ifru_flags = IFF_TUN | IFF_NO_PI;
    // SAFETY: a tun descriptor and an ifreq with a NUL-terminated name and flags, as TUNSETIFF
    // reads (it writes the name back within the struct).
    if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &raw mut req) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Tun {
        fd,
        name: name.to_owned(),
    })
}

/// The relay between two tun devices: a thread copying each packet one device's descriptor
/// reads to the other's, until it is stopped (every wait bounded by [`RELAY_POLL_MS`]). It owns
/// both devices while it runs; [`Relay::stop`] hands them back.
#[derive(Debug)]
struct Relay {
    stop: Arc<AtomicBool>,
    copied: Arc<AtomicU64>,
    thread: Option<JoinHandle<(Tun, Tun)>>,
}

impl Relay {
    fn start(a: Tun, b: Tun) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let copied = Arc::new(AtomicU64::new(0));
        let (flag, count) = (Arc::clone(&stop), Arc::clone(&copied));
        let thread = thread::Builder::new()
            .name(format!("tun-relay-{}", a.name))
            .spawn(move || {
                relay(&a, &b, &flag, &count);
                (a, b)
            })
            .context("cannot spawn the tun relay thread")?;
        Ok(Self {
            stop,
            copied,
            thread: Some(thread),
        })
    }

    /// Stops the thread and returns the two devices (still there: their descriptors are open).
    fn stop(mut self) -> Option<(Tun, Tun)> {
        self.halt()
    }

    fn halt(&mut self) -> Option<(Tun, Tun)> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().and_then(|thread| thread.join().ok())
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // The devices go with their descriptors, here.
        drop(self.halt());
    }
}

/// Copies packets between `a` and `b` until `stop`.
fn relay(a: &Tun, b: &Tun, stop: &AtomicBool, copied: &AtomicU64) {
    let mut buf = vec![0u8; 65_536];
    let mut fds = [
        libc::pollfd {
            fd: a.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: b.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    while !stop.load(Ordering::SeqCst) {
        // SAFETY: two valid pollfd entries that outlive the call.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, RELAY_POLL_MS) };
        if ready <= 0 {
            if ready < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                thread::sleep(Duration::from_millis(10));
            }
            continue;
        }
        for (from, to) in [(a, b), (b, a)] {
            for _ in 0..RELAY_BURST {
                // SAFETY: reads into a buffer of the length given.
                let len =
                    unsafe { libc::read(from.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                let Ok(len) = usize::try_from(len) else {
                    break;
                };
                if len == 0 {
                    break;
                }
                // A packet the other side refuses (its device is down) is lost, as on a wire.
                // SAFETY: writes `len` bytes of the buffer.
                let written = unsafe { libc::write(to.fd.as_raw_fd(), buf.as_ptr().cast(), len) };
                if written > 0 {
                    copied.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// The devices of a [`TunLab`]: the two tun devices joined by the relay, the internet side's
/// alone while the gateway's is deleted, or a veth in the gateway's place.
#[derive(Debug)]
enum Devices {
    Joined(Relay),
    IspOnly(Tun),
    /// The gateway's WAN is end A of a veth whose end B in the internet namespace has the
    /// internet side's address; the internet side's tun device keeps the servers' addresses.
    Veth(VethPair, Tun),
    /// A relay thread panicked: the devices went with it.
    Lost,
}

/// A gateway namespace whose WAN is a tun device, and an internet namespace behind another, joined
/// by a relay (see the module documentation). Names are [`unique_name`]s of the prefix given.
#[derive(Debug)]
pub struct TunLab {
    // Dropped first: the relay closes both devices.
    devices: Mutex<Devices>,
    gw: Netns,
    inet: Netns,
    prefix: String,
    wan: String,
    isp: String,
}

impl TunLab {
    /// Builds the lab; the gateway's device reports link type `link_type` (`ARPHRD_*`).
    /// Namespaces and devices are named `unique_name(prefix)`.
    pub fn new(prefix: &str, link_type: u16) -> Result<Self> {
        let gw = Netns::new(prefix)?;
        let inet = Netns::new(prefix)?;
        // IPv4 only: no router solicitations or MLD reports of the devices' own to blur the
        // counters a test reads.
        for ns in [&gw, &inet] {
            for key in ["all", "default"] {
                ns.set_sysctl(&format!("net.ipv6.conf.{key}.disable_ipv6"), "1")?;
            }
        }
        let (wan, isp) = (unique_name(prefix), unique_name(prefix));
        let isp_tun = Tun::new(&inet, &isp, ARPHRD_NONE)?;
        link_up(&inet, &isp)?;
        addr_add(&inet, &isp, &format!("{INET_ADDR}/24"))?;
        for server in [TURN_A, TURN_B, OUTSIDE] {
            addr_add(&inet, &isp, &format!("{server}/32"))?;
        }
        let lab = Self {
            devices: Mutex::new(Devices::IspOnly(isp_tun)),
            gw,
            inet,
            prefix: prefix.to_owned(),
            wan,
            isp,
        };
        lab.create_wan(link_type)?;
        Ok(lab)
    }

    fn devices(&self) -> std::sync::MutexGuard<'_, Devices> {
        self.devices
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The internet side's tun device while the gateway has no WAN (puts the state back and
    /// fails otherwise).
    fn take_isp(&self, devices: &mut Devices) -> Result<Tun> {
        match std::mem::replace(devices, Devices::Lost) {
            Devices::IspOnly(isp) => Ok(isp),
            Devices::Lost => bail!("the lab's devices went with a panicked relay"),
            there => {
                *devices = there;
                bail!("{} is still there: delete it first", self.wan)
            }
        }
    }

    /// Creates the gateway's tun device (deleted by [`TunLab::delete_wan`]) with link type
    /// `link_type`, its address and routes, and starts the relay: a new interface of the same
    /// name, with a new index, as a PPP link dialled again.
    pub fn create_wan(&self, link_type: u16) -> Result<()> {
        {
            let mut devices = self.devices();
            let isp = self.take_isp(&mut devices)?;
            let wan = match Tun::new(&self.gw, &self.wan, link_type) {
                Ok(wan) => wan,
                Err(e) => {
                    *devices = Devices::IspOnly(isp);
                    return Err(e);
                }
            };
            *devices = Devices::Joined(Relay::start(wan, isp)?);
        }
        self.configure_wan()
    }

    /// Creates the gateway's WAN as a veth (an Ethernet interface) of the same name instead, its
    /// peer in the internet namespace taking over the internet side's address: an interface of
    /// the name comes back as another kind.
    pub fn create_wan_veth(&self) -> Result<()> {
        {
            let mut devices = self.devices();
            let isp = self.take_isp(&mut devices)?;
            let peer = unique_name(&self.prefix);
            let made = self
                .inet
                .ip(["addr", "del", &format!("{INET_ADDR}/24"), "dev", &self.isp])
                .and_then(|_| veth_pair(&self.gw, &self.wan, &self.inet, &peer))
                .and_then(|veth| {
                    addr_add(&self.inet, &peer, &format!("{INET_ADDR}/24"))?;
                    Ok(veth)
                });
            match made {
                Ok(veth) => *devices = Devices::Veth(veth, isp),
                Err(e) => {
                    *devices = Devices::IspOnly(isp);
                    return Err(e);
                }
            }
        }
        self.configure_wan()
    }

    /// The gateway's WAN up, with its address and routes.
    fn configure_wan(&self) -> Result<()> {
        link_up(&self.gw, &self.wan)?;
        addr_add(&self.gw, &self.wan, &format!("{GW_ADDR}/24"))?;
        for cidr in GW_ROUTES {
            route_add(&self.gw, cidr, IpAddr::V4(INET_ADDR))
                .with_context(|| format!("routing {cidr} in {}", self.gw.name()))?;
        }
        Ok(())
    }

    /// Gives the gateway's tun device link type `link_type` in place (down, `TUNSETLINK`, up,
    /// its address and routes again): the same interface, its index kept, saying it has another
    /// frame layout, as a raw-IP modem switched to Ethernet framing.
    pub fn retype_wan(&self, link_type: u16) -> Result<()> {
        {
            let mut devices = self.devices();
            let Devices::Joined(relay) = std::mem::replace(&mut *devices, Devices::Lost) else {
                bail!("{} is not a tun device joined to the relay", self.wan);
            };
            let (wan, isp) = relay.stop().context("the tun relay thread panicked")?;
            let retyped = self
                .gw
                .ip(["link", "set", &self.wan, "down"])
                .and_then(|_| self.gw.ip(["addr", "flush", "dev", &self.wan]))
                .and_then(|_| wan.set_link_type(link_type));
            *devices = Devices::Joined(Relay::start(wan, isp)?);
            retyped?;
        }
        self.configure_wan()
    }

    /// Deletes the gateway's WAN (a tun device's descriptor closed, or the veth), as a PPP link
    /// hung up; the internet side's tun device stays.
    pub fn delete_wan(&self) -> Result<()> {
        let mut devices = self.devices();
        match std::mem::replace(&mut *devices, Devices::Lost) {
            Devices::Joined(relay) => {
                let (wan, isp) = relay.stop().context("the tun relay thread panicked")?;
                drop(wan);
                *devices = Devices::IspOnly(isp);
            }
            Devices::Veth(veth, isp) => {
                drop(veth);
                *devices = Devices::IspOnly(isp);
                addr_add(&self.inet, &self.isp, &format!("{INET_ADDR}/24"))?;
            }
            other => {
                *devices = other;
                bail!("{} is gone already", self.wan);
            }
        }
        Ok(())
    }

    /// Switches IPv6 on for both tun devices (off in the lab otherwise) and gives them the
    /// addresses `2001:db8:0:1::2/64` (gateway) and `2001:db8:0:1::1/64`, the internet side also
    /// [`SERVER6`]; the gateway routes `2001:db8:0:2::/64` via `2001:db8:0:1::1`. The devices
    /// then send their own router solicitations and MLD reports now and then.
    pub fn enable_ipv6(&self) -> Result<()> {
        for (ns, dev) in [(&self.gw, &self.wan), (&self.inet, &self.isp)] {
            ns.set_sysctl(&format!("net.ipv6.conf.{dev}.disable_ipv6"), "0")?;
        }
        addr_add(&self.gw, &self.wan, "2001:db8:0:1::2/64")?;
        addr_add(&self.inet, &self.isp, "2001:db8:0:1::1/64")?;
        addr_add(&self.inet, &self.isp, &format!("{SERVER6}/128"))?;
        route_add(&self.gw, "2001:db8:0:2::/64", "2001:db8:0:1::1".parse()?)?;
        Ok(())
    }

    /// Packets the relay has copied, both ways, since the gateway's device was last created.
    pub fn relayed(&self) -> u64 {
        match &*self.devices() {
            Devices::Joined(relay) => relay.copied.load(Ordering::Relaxed),
            _ => 0,
        }
    }

    /// The gateway namespace.
    pub fn gw(&self) -> &Netns {
        &self.gw
    }

    /// The internet namespace.
    pub fn inet(&self) -> &Netns {
        &self.inet
    }

    /// The gateway's tun device, where gotofw attaches.
    pub fn wan(&self) -> &str {
        &self.wan
    }

    /// The internet side's tun device.
    pub fn isp(&self) -> &str {
        &self.isp
    }
}

/// The link type of `ifname` in `ns` as `ip -d link` shows it (`link/none`, `link/ppp`,
/// `link/[519]`...).
pub fn link_kind(ns: &Netns, ifname: &str) -> Result<String> {
    let shown = ns.ip(["-d", "link", "show", "dev", ifname])?;
    shown
        .split_whitespace()
        .find(|word| word.starts_with("link/"))
        .map(str::to_owned)
        .with_context(|| format!("no link/ in `ip -d link show dev {ifname}`: {shown}"))
}
