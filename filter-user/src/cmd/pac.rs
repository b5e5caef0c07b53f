//! `gotofw pac`: a proxy auto-config file that routes the GoTo domains on their own.
//!
//! GoTo's document suggests a proxy.pac built from its domain lists to send GoTo's traffic to a proxy
//! other than the one for everything else, and keeping those domains away from proxies that
//! inspect TLS. The file is plain ECMAScript 3 (no `let`, no `endsWith`), as old PAC engines
//! need, and uses no DNS functions, so it never resolves a name.

use std::{
    fmt::{self, Write as _},
    fs,
    net::{Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
};

use anyhow::Context as _;

use crate::{
    cli::PacArgs,
    domains::{self, List, Match},
    error::UsageError,
    output::print,
};

/// A proxy's address as a PAC file names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyAddr {
    /// Lower-case host name, IPv4 address, or bracketed IPv6 address.
    host: String,
    /// 1-65535.
    port: u16,
}

impl ProxyAddr {
    /// Parses `HOST:PORT` (IPv6 as `[ADDR]:PORT`) given to `flag`.
    pub fn parse(flag: &'static str, value: &str) -> Result<Self, UsageError> {
        let bad = |reason| UsageError::BadProxy {
            flag,
            value: value.to_owned(),
            reason,
        };
        let (host, port) = if let Some(rest) = value.strip_prefix('[') {
            let (addr, port) = rest
                .split_once("]:")
                .ok_or_else(|| bad("an IPv6 address goes in brackets, [ADDR]:PORT"))?;
            let addr: Ipv6Addr = addr
                .parse()
                .map_err(|_| bad("the part in brackets is not an IPv6 address"))?;
            (format!("[{addr}]"), port)
        } else {
            let (host, port) = value
                .rsplit_once(':')
                .ok_or_else(|| bad("it has no :PORT"))?;
            if host.contains(':') {
                return Err(bad("an IPv6 address goes in brackets, [ADDR]:PORT"));
            }
            if !is_host_name(host) && host.parse::<Ipv4Addr>().is_err() {
                return Err(bad("the host is not a DNS name or IPv4 address"));
            }
            (host.to_ascii_lowercase(), port)
        };
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0 && port.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| bad("the port must be 1-65535"))?;
        Ok(Self { host, port })
    }
}

impl fmt::Display for ProxyAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// A DNS host name: dot-separated labels of letters, digits and inner hyphens, at most 253
/// characters, the last label not all digits (that would be a mistyped IPv4 address).
fn is_host_name(host: &str) -> bool {
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(label_ok)
        && !host
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
}

/// Where a PAC file sends a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// No proxy.
    Direct,
    /// Through this HTTP proxy.
    Proxy(ProxyAddr),
}

impl Route {
    /// Parses the `--else` value: `DIRECT` or `PROXY HOST:PORT` (keywords in any case).
    pub fn parse_fallback(value: &str) -> Result<Self, UsageError> {
        let words: Vec<&str> = value.split_whitespace().collect();
        match words[..] {
            [word] if word.eq_ignore_ascii_case("DIRECT") => Ok(Self::Direct),
            [word, addr] if word.eq_ignore_ascii_case("PROXY") => {
                Ok(Self::Proxy(ProxyAddr::parse("--else", addr)?))
            }
            _ => Err(UsageError::BadRoute(value.to_owned())),
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Direct => f.write_str("DIRECT"),
            Self::Proxy(addr) => write!(f, "PROXY {addr}"),
        }
    }
}

/// What to write: the checked form of [`PacArgs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacSpec {
    /// Where the GoTo domains go.
    pub goto: Route,
    /// Where every other host goes.
    pub other: Route,
    /// Whether the GoTo Training domains count as GoTo domains.
    pub training: bool,
}

impl PacSpec {
    /// Checks the raw options.
    pub fn from_args(args: &PacArgs) -> Result<Self, UsageError> {
        let goto = match (&args.proxy, args.direct) {
            (Some(proxy), _) => Route::Proxy(ProxyAddr::parse("--proxy", proxy)?),
            (None, true) => Route::Direct,
            (None, false) => return Err(UsageError::NoPacRoute),
        };
        let other = Route::parse_fallback(&args.fallback)?;
        if goto == other {
            return Err(UsageError::PacChangesNothing(goto.to_string()));
        }
        Ok(Self {
            goto,
            other,
            training: args.training,
        })
    }
}

/// `items` as the lines of a JavaScript array literal, each with its comment, no trailing comma.
fn js_array(out: &mut String, var: &str, items: &[(&str, String)]) {
    let width = items.iter().map(|(s, _)| s.len()).max().unwrap_or(0) + 3;
    if items.is_empty() {
        let _ = writeln!(out, "var {var} = [];");
        return;
    }
    let _ = writeln!(out, "var {var} = [");
    for (i, (item, comment)) in items.iter().enumerate() {
        let comma = if i + 1 == items.len() { "" } else { "," };
        let literal = format!("\"{item}\"{comma}");
        let _ = writeln!(out, "  {literal:<width$} // {comment}");
    }
    out.push_str("];\n");
}

/// The proxy.pac text for `spec`.
pub fn render(spec: &PacSpec) -> String {
    let selected: Vec<_> = domains::selected(spec.training).collect();
    let entry = |d: &domains::Domain| {
        let list = match d.list {
            List::Essential => String::new(),
            List::Training => " (GoTo Training)".to_owned(),
        };
        (d.name, format!("{}: {}{list}", d.pattern(), d.purpose))
    };
    let suffixes: Vec<_> = selected
        .iter()
        .filter(|d| d.matching == Match::Suffix)
        .map(|d| entry(d))
        .collect();
    let names: Vec<_> = selected
        .iter()
        .filter(|d| d.matching == Match::Exact)
        .map(|d| entry(d))
        .collect();
    let lists = if spec.training {
        "essential and GoTo Training domains"
    } else {
        "essential domains"
    };
    let mut out = format!(
        "// proxy.pac for the GoTo app, written by gotofw {version} (`gotofw pac`).\n\
         // Regenerate it rather than editing it.\n\
         //\n\
         // Host names under GoTo's {lists} (\"Minimal Firewall Settings\" 2.1)\n\
         // go {goto}; every other host goes {other}.\n\
         // Names match by whole labels, in any case, with or without a trailing dot:\n\
         // \"goto.com\" in GOTO_SUFFIXES covers goto.com and x.goto.com, not notgoto.com\n\
         // nor goto.com.example.net. No name is resolved.\n\
         \n\
         var GOTO_ROUTE = \"{goto}\";\n\
         var OTHER_ROUTE = \"{other}\";\n\
         \n\
         // Each of these names and every name below it.\n",
        version = env!("CARGO_PKG_VERSION"),
        goto = spec.goto,
        other = spec.other,
    );
    js_array(&mut out, "GOTO_SUFFIXES", &suffixes);
    out.push_str("\n// These names only.\n");
    js_array(&mut out, "GOTO_NAMES", &names);
    out.push_str(
        r#"
function isGoToHost(host) {
  var h = String(host).toLowerCase();
  if (h.charAt(h.length - 1) == ".") {
    h = h.substring(0, h.length - 1);
  }
  var i, d;
  for (i = 0; i < GOTO_NAMES.length; i++) {
    if (h == GOTO_NAMES[i]) {
      return true;
    }
  }
  for (i = 0; i < GOTO_SUFFIXES.length; i++) {
    d = GOTO_SUFFIXES[i];
    if (h == d || (h.length > d.length && h.substring(h.length - d.length - 1) == "." + d)) {
      return true;
    }
  }
  return false;
}

function FindProxyForURL(url, host) {
  if (isGoToHost(host)) {
    return GOTO_ROUTE;
  }
  return OTHER_ROUTE;
}
"#,
    );
    out
}

/// Where `--output PATH` goes: PATH itself, or the file a symbolic link at PATH points to (the
/// link stays a link, as whoever linked it there expects). Bad input (exit 2): PATH names a
/// directory or no file, its directory does not exist, or it is a link to nothing.
fn output_target(path: &Path) -> anyhow::Result<PathBuf> {
    let bad = |reason: String| UsageError::BadOutput {
        path: path.display().to_string(),
        reason,
    };
    if path.file_name().is_none() {
        return Err(
            bad("names no file: give a file path such as /var/www/proxy.pac".to_owned()).into(),
        );
    }
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            return match fs::metadata(dir) {
                Ok(m) if m.is_dir() => Ok(path.to_owned()),
                Ok(_) => Err(bad(format!("is not in a directory: {} is not one", dir.display())).into()),
                Err(_) => Err(bad(format!(
                    "is in a directory that does not exist ({}): create it first, or write the PAC elsewhere",
                    dir.display()
                ))
                .into()),
            };
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("examining {}", path.display())));
        }
    };
    let target = if meta.file_type().is_symlink() {
        fs::canonicalize(path).map_err(|_| {
            bad("is a symbolic link to a file in a directory that does not exist: point the link at a file in an existing directory, or remove it".to_owned())
        })?
    } else {
        path.to_owned()
    };
    if target.is_dir() {
        return Err(bad(format!(
            "is a directory: name the file to write, e.g. {}",
            path.join("proxy.pac").display()
        ))
        .into());
    }
    Ok(target)
}

/// Writes `text` to `path` through a temporary file in the same directory and a rename, so a
/// web server never serves half a PAC; a file replaced keeps its permissions.
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("--output '{}' names no file", path.display()))?;
    let tmp = path.with_file_name(format!(
        ".{}.gotofw-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let permissions = fs::metadata(path).ok().map(|m| m.permissions());
    let result = fs::write(&tmp, text)
        .and_then(|()| permissions.map_or(Ok(()), |p| fs::set_permissions(&tmp, p)))
        .and_then(|()| fs::rename(&tmp, path))
        .with_context(|| format!("writing {} failed", path.display()));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Runs the command.
pub fn run(args: &PacArgs) -> anyhow::Result<()> {
    let spec = PacSpec::from_args(args)?;
    let text = render(&spec);
    match &args.output {
        None => Ok(print(&text)?),
        Some(path) => {
            write_atomically(&output_target(path)?, &text)?;
            Ok(print(&format!(
                "wrote {}: {} GoTo domains go {}, other hosts {}\n",
                path.display(),
                domains::selected(spec.training).count(),
                spec.goto,
                spec.other
            ))?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy(value: &str) -> Result<String, String> {
        ProxyAddr::parse("--proxy", value)
            .map(|p| p.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn proxy_addresses_that_parse() {
        for (value, shown) in [
            ("proxy.example:3128", "proxy.example:3128"),
            ("Proxy.Example:8080", "proxy.example:8080"),
            ("192.0.2.8:3128", "192.0.2.8:3128"),
            ("localhost:1", "localhost:1"),
            ("p-1.example:65535", "p-1.example:65535"),
            ("[2001:db8::1]:3128", "[2001:db8::1]:3128"),
            ("[2001:DB8:0::1]:80", "[2001:db8::1]:80"),
        ] {
            assert_eq!(proxy(value).as_deref(), Ok(shown), "{value}");
        }
    }

    #[test]
    fn proxy_addresses_that_do_not() {
        for (value, reason) in [
            ("proxy.example", "no :PORT"),
            ("proxy.example:0", "1-65535"),
            ("proxy.example:65536", "1-65535"),
            ("proxy.example:+80", "1-65535"),
            ("proxy.example:", "1-65535"),
            ("proxy.example:http", "1-65535"),
            (":3128", "DNS name"),
            ("-proxy.example:3128", "DNS name"),
            ("proxy..example:3128", "DNS name"),
            ("proxy_1.example:3128", "DNS name"),
            ("proxy.example\";alert(1);\":80", "DNS name"),
            ("proxy example:80", "DNS name"),
            ("999.1.1.1:80", "DNS name"),
            ("2001:db8::1:3128", "[ADDR]:PORT"),
            ("[2001:db8::1]3128", "[ADDR]:PORT"),
            ("[nonsense]:3128", "IPv6"),
        ] {
            let err = proxy(value).unwrap_err();
            assert!(err.contains(reason), "{value}: {err}");
            assert!(err.contains(&format!("'{value}'")), "{value}: {err}");
            assert!(err.starts_with("--proxy "), "{err}");
        }
    }

    #[test]
    fn fallback_routes() {
        assert_eq!(Route::parse_fallback("DIRECT").unwrap(), Route::Direct);
        assert_eq!(Route::parse_fallback(" direct ").unwrap(), Route::Direct);
        assert_eq!(
            Route::parse_fallback("proxy other.example:8080")
                .unwrap()
                .to_string(),
            "PROXY other.example:8080"
        );
        for bad in [
            "",
            "DIRECTLY",
            "other.example:8080",
            "SOCKS x:1",
            "PROXY a:1 b:2",
        ] {
            let err = Route::parse_fallback(bad).unwrap_err().to_string();
            assert!(err.starts_with(&format!("--else '{bad}'")), "{err}");
        }
        let err = Route::parse_fallback("PROXY x:0").unwrap_err().to_string();
        assert!(err.starts_with("--else 'x:0'"), "{err}");
    }

    fn args(proxy: Option<&str>, direct: bool, fallback: &str) -> PacArgs {
        PacArgs {
            proxy: proxy.map(str::to_owned),
            direct,
            training: false,
            fallback: fallback.to_owned(),
            output: None,
        }
    }

    #[test]
    fn a_pac_must_route_the_goto_domains_somewhere_else_than_the_rest() {
        assert!(matches!(
            PacSpec::from_args(&args(None, false, "DIRECT")),
            Err(UsageError::NoPacRoute)
        ));
        assert!(matches!(
            PacSpec::from_args(&args(None, true, "DIRECT")),
            Err(UsageError::PacChangesNothing(_))
        ));
        assert!(matches!(
            PacSpec::from_args(&args(Some("P.example:1"), false, "PROXY p.example:1")),
            Err(UsageError::PacChangesNothing(_))
        ));
        let spec = PacSpec::from_args(&args(None, true, "PROXY dpi.example:8080")).unwrap();
        assert_eq!(spec.goto, Route::Direct);
        assert_eq!(spec.other.to_string(), "PROXY dpi.example:8080");
    }

    #[test]
    fn render_lists_the_selected_domains_without_trailing_commas() {
        let spec = PacSpec {
            goto: Route::Proxy(ProxyAddr::parse("--proxy", "proxy.example:3128").unwrap()),
            other: Route::Direct,
            training: false,
        };
        let pac = render(&spec);
        assert!(pac.contains("var GOTO_ROUTE = \"PROXY proxy.example:3128\";"));
        assert!(pac.contains("var OTHER_ROUTE = \"DIRECT\";"));
        assert!(pac.contains("\"goto.com\","));
        assert!(pac.contains("\"expertcity.com\"  "), "{pac}");
        assert!(pac.contains("var GOTO_NAMES = [];"));
        assert!(!pac.contains("youtube"));
        let pac = render(&PacSpec {
            training: true,
            ..spec
        });
        assert!(pac.contains("\"googlevideo.com\"  "), "{pac}");
        assert!(pac.contains("\"apis.google.com\"  "), "{pac}");
        assert!(!pac.contains(",\n]"));
    }
}
