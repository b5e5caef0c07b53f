//! The lab's servers in `inet`: coturn's `turnserver` and `turnutils_peer`, nginx with a
//! certificate made at start, and the UDP echo servers. The HA lab (`halab`) starts the same
//! servers in its own `inet` through [`make_certificate`] and [`start_servers`].

use std::{
    fs,
    net::{SocketAddr, SocketAddrV4},
    path::Path,
    process::Command,
    time::Duration,
};

use anyhow::{Context, Result, bail};

use super::{Lab3, MEDIA_PORTS, SERVERS, TURN_PASSWORD, TURN_PEER, TURN_REALM, TURN_USER};
use crate::{
    Netns, ServerHandle,
    daemon::{Daemon, Transport},
    gotofw::TURN_A,
    udp_echo_server,
};

/// How long a server may take to listen after it starts.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

impl Lab3 {
    /// A self-signed certificate for nginx, valid for the server addresses.
    pub(super) fn make_certificate(&self, openssl: &Path) -> Result<()> {
        make_certificate(openssl, self.dir())
    }

    pub(super) fn start_servers(
        &mut self,
        turnserver: &Path,
        peer: &Path,
        nginx: &Path,
    ) -> Result<()> {
        let dir = self.dir().to_owned();
        let programs = ServerPrograms {
            turnserver,
            peer,
            nginx,
        };
        start_servers(
            &self.inet,
            &dir,
            &programs,
            &mut self.daemons,
            &mut self.echoes,
        )
    }
}

/// The server programs [`start_servers`] runs, found by the caller.
#[derive(Debug)]
pub(crate) struct ServerPrograms<'a> {
    /// coturn's `turnserver`.
    pub turnserver: &'a Path,
    /// coturn's `turnutils_peer`.
    pub peer: &'a Path,
    /// nginx.
    pub nginx: &'a Path,
}

/// A self-signed certificate for nginx in `dir` (`cert.pem`, `key.pem`), valid for the server
/// addresses.
pub(crate) fn make_certificate(openssl: &Path, dir: &Path) -> Result<()> {
    let san: Vec<String> = SERVERS.iter().map(|ip| format!("IP:{ip}")).collect();
    let output = Command::new(openssl)
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=gotofw-lab", "-addext"])
        .arg(format!("subjectAltName={}", san.join(",")))
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .context("cannot run openssl")?;
    if !output.status.success() {
        bail!(
            "openssl req failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Starts the servers in `inet` (whose addresses must be up): turnserver, `turnutils_peer`,
/// nginx (HTTPS and HTTP; files under `dir/files/` are served as `/files/NAME`) and the UDP
/// echoes; returns when they all listen. Their configuration, logs and pid files go in `dir`,
/// which must hold [`make_certificate`]'s files; the servers go into `daemons` and `echoes`,
/// whose `Drop` stops them.
pub(crate) fn start_servers(
    inet: &Netns,
    dir: &Path,
    programs: &ServerPrograms,
    daemons: &mut Vec<Daemon>,
    echoes: &mut Vec<ServerHandle>,
) -> Result<()> {
    let path = |file: &str| dir.join(file);
    let path_str = |file: &str| dir.join(file).display().to_string();
    let mut turn = format!(
        "listening-port=3478\nrelay-ip={TURN_A}\n\
             # Relay ports away from the UDP echo ports (45000-50000).\n\
             min-port=60000\nmax-port=60999\n\
             lt-cred-mech\nuser={TURN_USER}:{TURN_PASSWORD}\nrealm={TURN_REALM}\nfingerprint\n\
             no-tls\nno-dtls\nno-rfc5780\nno-cli\nno-stdout-log\nsimple-log\n\
             log-file={}\npidfile={}\nuserdb={}\n",
        path_str("turnserver.log"),
        path_str("turnserver.pid"),
        path_str("turndb"),
    );
    for server in SERVERS {
        turn.push_str("listening-ip=");
        turn.push_str(&server.to_string());
        turn.push('\n');
    }
    fs::write(path("turnserver.conf"), turn)?;
    let mut daemon = Daemon::spawn(
        inet,
        "turnserver",
        programs.turnserver,
        &["-c".to_owned(), path_str("turnserver.conf")],
        &path("turnserver.out"),
    )?;
    let turn_sockets: Vec<(Transport, SocketAddr)> = SERVERS
        .iter()
        .flat_map(|&ip| {
            [Transport::Udp, Transport::Tcp]
                .map(|transport| (transport, SocketAddr::V4(SocketAddrV4::new(ip, 3478))))
        })
        .collect();
    daemon.wait_listening(inet, &turn_sockets, READY_TIMEOUT)?;
    daemons.push(daemon);

    let mut daemon = Daemon::spawn(
        inet,
        "turnutils_peer",
        programs.peer,
        &[
            "-L".to_owned(),
            TURN_PEER.ip().to_string(),
            "-p".to_owned(),
            TURN_PEER.port().to_string(),
        ],
        &path("turnutils_peer.out"),
    )?;
    daemon.wait_listening(
        inet,
        &[(Transport::Udp, SocketAddr::V4(TURN_PEER))],
        READY_TIMEOUT,
    )?;
    daemons.push(daemon);

    let listen: Vec<String> = SERVERS
        .iter()
        .map(|ip| format!("    listen {ip}:443 ssl;\n    listen {ip}:80;\n"))
        .collect();
    let listen = listen.concat();
    let temp: Vec<String> = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
        .iter()
        .map(|kind| {
            format!(
                "  {kind}_temp_path {};\n",
                path_str(&format!("nginx-{kind}"))
            )
        })
        .collect();
    let temp = temp.concat();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {pid};\nerror_log stderr;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n{temp}  default_type text/plain;\n  \
             ssl_certificate {cert};\n  ssl_certificate_key {key};\n  server {{\n{listen}    \
             location / {{ return 200 \"gotofw lab: $scheme on $server_addr\\n\"; }}\n    \
             location /files/ {{ alias {files}/; }}\n  }}\n}}\n",
        pid = path_str("nginx.pid"),
        cert = path_str("cert.pem"),
        key = path_str("key.pem"),
        files = path_str("files"),
    );
    fs::write(path("nginx.conf"), conf)?;
    let mut daemon = Daemon::spawn(
        inet,
        "nginx",
        programs.nginx,
        &[
            "-p".to_owned(),
            path_str(""),
            "-c".to_owned(),
            path_str("nginx.conf"),
        ],
        &path("nginx.out"),
    )?;
    let web_sockets: Vec<(Transport, SocketAddr)> = SERVERS
        .iter()
        .flat_map(|&ip| {
            [443, 80].map(|port| (Transport::Tcp, SocketAddr::V4(SocketAddrV4::new(ip, port))))
        })
        .collect();
    daemon.wait_listening(inet, &web_sockets, READY_TIMEOUT)?;
    daemons.push(daemon);

    for ip in SERVERS {
        for port in MEDIA_PORTS {
            let echo = udp_echo_server(inet, SocketAddr::V4(SocketAddrV4::new(ip, port)))?;
            echoes.push(echo);
        }
    }
    Ok(())
}
