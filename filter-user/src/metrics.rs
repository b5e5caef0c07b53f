//! The counters of the attached filters as Prometheus metrics, served over HTTP by `gotofw
//! metrics` and `gotofw run`.
//!
//! The values live in the kernel's maps, not in this process, so nothing is kept between
//! scrapes: every `GET /metrics` reads the pins (as `status` does) and encodes what it read with
//! `prometheus-client`, in the OpenMetrics text format (the Prometheus text format's standard
//! successor, which Prometheus asks for and parses natively).

use std::{
    convert::Infallible,
    sync::{Arc, RwLock},
    time::Duration,
};

use anyhow::Context as _;
use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header,
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};
use tokio::net::TcpListener;

use crate::{
    error::UsageError,
    status_model::{self, InterfaceStatus},
    system,
};

/// The media type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Which filters a scrape reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every filter of this network namespace.
    All,
    /// These interfaces; one without a filter is reported as not attached.
    Only(Vec<String>),
}

/// What one scrape read.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The attached filters.
    pub interfaces: Vec<InterfaceStatus>,
    /// Interfaces in scope that have no filter.
    pub missing: Vec<String>,
    /// The service's configuration file (`gotofw run` only).
    pub reload: Option<ReloadState>,
}

/// Whether `gotofw run`'s last load of its configuration file (at start or on SIGHUP) took
/// effect, as Prometheus's own `prometheus_config_last_reload_*` series say of its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReloadState {
    /// The last load was applied whole: the file read and checked, every interface given its
    /// rule set.
    pub successful: bool,
    /// Unix time of the last load that was.
    pub success_at: u64,
}

impl ReloadState {
    /// A load that succeeded now.
    pub fn succeeded() -> Self {
        Self {
            successful: true,
            success_at: system::unix_now(),
        }
    }
}

/// The reload state the service shares with its endpoint.
pub type SharedReload = Arc<RwLock<Option<ReloadState>>>;

/// Reads the filters in `scope` from their pins.
pub fn gather(scope: &Scope) -> anyhow::Result<Snapshot> {
    match scope {
        Scope::All => Ok(Snapshot {
            interfaces: status_model::collect(None)?.interfaces,
            ..Snapshot::default()
        }),
        Scope::Only(names) => {
            let mut snapshot = Snapshot::default();
            for name in names {
                let present = system::key_dir(&system::key_for(name)?)?.exists();
                let read = if present {
                    status_model::collect(Some(name)).map(Some)
                } else {
                    Ok(None)
                };
                match read {
                    Ok(Some(s)) => snapshot.interfaces.extend(s.interfaces),
                    Ok(None) => snapshot.missing.push(name.clone()),
                    // Detached between the check and the read.
                    Err(e) if matches!(e.downcast_ref(), Some(UsageError::NotAttached(_))) => {
                        snapshot.missing.push(name.clone());
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(snapshot)
        }
    }
}

/// Encodes `snapshot` in the OpenMetrics text format.
pub fn render(snapshot: Snapshot) -> anyhow::Result<String> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(snapshot));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut attached: Vec<(Labels<'_>, u64)> = self
            .interfaces
            .iter()
            .map(|s| (vec![("interface", s.interface.as_str())], 1))
            .collect();
        attached.extend(
            self.missing
                .iter()
                .map(|name| (vec![("interface", name.as_str())], 0)),
        );
        gauges(
            &mut encoder,
            "gotofw_filter_attached",
            "Whether a gotofw filter is attached to the interface (1) or not (0).",
            &attached,
        )?;
        let mut filtering: Vec<(Labels<'_>, u64)> = self
            .interfaces
            .iter()
            .map(|s| {
                (
                    vec![("interface", s.interface.as_str())],
                    u64::from(s.filtering),
                )
            })
            .collect();
        filtering.extend(
            self.missing
                .iter()
                .map(|name| (vec![("interface", name.as_str())], 0)),
        );
        gauges(
            &mut encoder,
            "gotofw_filtering",
            "Whether the interface is really filtered (1): its gotofw filter attached to its current index with gotofw's programs at every hook. 0: no filter, or one that is severed, on an interface that went, or replaced (see gotofw_filter_state).",
            &filtering,
        )?;
        let states: Vec<(Labels<'_>, u64)> = self
            .interfaces
            .iter()
            .map(|s| {
                (
                    vec![
                        ("interface", s.interface.as_str()),
                        ("state", s.state.name()),
                    ],
                    1,
                )
            })
            .collect();
        gauges(
            &mut encoder,
            "gotofw_filter_state",
            "The pinned filter's state (filtering, severed, interface-gone, interface-recreated, replaced, egress-missing); always 1.",
            &states,
        )?;
        let each = |f: &dyn Fn(&InterfaceStatus) -> u64| -> Vec<(Labels<'_>, u64)> {
            self.interfaces
                .iter()
                .map(|s| (vec![("interface", s.interface.as_str())], f(s)))
                .collect()
        };
        let info: Vec<(Labels<'_>, u64)> = self
            .interfaces
            .iter()
            .map(|s| {
                (
                    vec![
                        ("interface", s.interface.as_str()),
                        ("scenario", s.scenario.as_str()),
                        ("mode", s.mode.name()),
                        ("xdp_mode", s.xdp_mode.name()),
                    ],
                    1,
                )
            })
            .collect();
        gauges(
            &mut encoder,
            "gotofw_filter_info",
            "The attached filter's scenario, mode (stateful, stateless or ingress-only) and XDP mode; always 1.",
            &info,
        )?;
        gauges(
            &mut encoder,
            "gotofw_filter_attached_timestamp_seconds",
            "Unix time the rule set was attached (or last swapped).",
            &each(&|s| s.attached_at),
        )?;
        gauges(
            &mut encoder,
            "gotofw_interface_present",
            "Whether the filtered interface still exists (0: it has gone; run `gotofw detach`).",
            &each(&|s| u64::from(s.present)),
        )?;
        let lost: Vec<(Labels<'_>, u64)> = self
            .interfaces
            .iter()
            .filter_map(|s| {
                s.log_samples_lost
                    .map(|n| (vec![("interface", s.interface.as_str())], n))
            })
            .collect();
        counters(
            &mut encoder,
            "gotofw_log_samples_lost",
            "Drop-log samples the kernel could not write into the ring buffer while a reader followed the log (full although read within the last 10 s: the reader does not keep up); a ring nobody reads loses nothing that counts; the verdicts are not affected.",
            &lost,
        )?;
        let rules: Vec<_> = self.interfaces.iter().flat_map(rule_labels).collect();
        let packets: Vec<(Labels<'_>, u64)> =
            rules.iter().map(|(l, c)| (l.clone(), c.packets)).collect();
        counters(
            &mut encoder,
            "gotofw_rule_packets",
            "Packets decided by each rule, allowance or fixed slot (default-block, malformed, unsupported, fragment-unknown, not-learned), per direction; summed over CPUs. In stateful mode an inbound packet counts under the rule that opened its flow.",
            &packets,
        )?;
        let bytes: Vec<(Labels<'_>, u64)> =
            rules.iter().map(|(l, c)| (l.clone(), c.bytes)).collect();
        counters(
            &mut encoder,
            "gotofw_rule_bytes",
            "Bytes (whole frames) decided by each rule, allowance or fixed slot, per direction.",
            &bytes,
        )?;
        let flows = |f: &dyn Fn(&status_model::FlowSummary) -> u64| -> Vec<(Labels<'_>, u64)> {
            self.interfaces
                .iter()
                .filter_map(|s| {
                    s.flows
                        .as_ref()
                        .map(|fl| (vec![("interface", s.interface.as_str())], f(fl)))
                })
                .collect()
        };
        gauges(
            &mut encoder,
            "gotofw_flow_table_entries",
            "Entries in the flow table, live or expired (stateful mode).",
            &flows(&|f| f.entries as u64),
        )?;
        gauges(
            &mut encoder,
            "gotofw_flow_table_live",
            "Flows not idle past their timeout (stateful mode).",
            &flows(&|f| f.live as u64),
        )?;
        gauges(
            &mut encoder,
            "gotofw_flow_table_size",
            "Most flows the table holds; when full, the least recently used go (stateful mode).",
            &flows(&|f| u64::from(f.table_size)),
        )?;
        self.encode_dns(&mut encoder)?;
        if let Some(reload) = self.reload {
            for (name, help, value) in [
                (
                    "gotofw_config_last_reload_successful",
                    "Whether gotofw run's last load of its configuration file (start or SIGHUP) took effect (1) or was refused or failed for an interface (0: the filters enforce the file as it was before).",
                    u64::from(reload.successful),
                ),
                (
                    "gotofw_config_last_reload_success_timestamp_seconds",
                    "Unix time of gotofw run's last successful load of its configuration file.",
                    reload.success_at,
                ),
            ] {
                // One series without labels, as Prometheus's own prometheus_config_* are.
                let family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                ConstGauge::new(value).encode(family)?;
            }
        }
        Ok(())
    }
}

impl Snapshot {
    /// The domain rules' families (issue 13): exported for every filter, zero without domain
    /// rules, so that the series stay the same whatever the rule set.
    fn encode_dns(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let each = |f: &dyn Fn(&status_model::DnsStatus) -> u64| -> Vec<(Labels<'_>, u64)> {
            self.interfaces
                .iter()
                .map(|s| (vec![("interface", s.interface.as_str())], f(&s.dns)))
                .collect()
        };
        for (name, help, value) in [
            (
                "gotofw_dns_queries",
                "DNS queries for names of the domain sets that the egress program recorded (their answers are learned from).",
                (&|d: &status_model::DnsStatus| d.queries)
                    as &dyn Fn(&status_model::DnsStatus) -> u64,
            ),
            (
                "gotofw_dns_answers_learned",
                "DNS answers learned from: from a server named, on a live flow, matching a recorded query's id and question, for a name of a domain set.",
                &|d| d.answers,
            ),
            (
                "gotofw_dns_addresses_learned",
                "Addresses learned from DNS answers (their A and AAAA records), each time one is taught.",
                &|d| d.learned,
            ),
            (
                "gotofw_dns_learn_failed",
                "Addresses of answers learned from that the learned table refused to take.",
                &|d| d.learn_failed,
            ),
            (
                "gotofw_dns_answers_missed",
                "DNS answers the ingress program could not hand to the learning program (a failed tail call): nothing learned from them.",
                &|d| d.missed,
            ),
        ] {
            counters(encoder, name, help, &each(value))?;
        }
        let refused: Vec<(Labels<'_>, u64)> = self
            .interfaces
            .iter()
            .flat_map(|s| {
                status_model::REFUSED_REASONS.iter().map(|(_, reason)| {
                    (
                        vec![("interface", s.interface.as_str()), ("reason", *reason)],
                        s.dns.refused.get(reason).copied().unwrap_or(0),
                    )
                })
            })
            .collect();
        counters(
            encoder,
            "gotofw_dns_answers_refused",
            "DNS answers that taught nothing, by reason: cut, not-answer, truncated (TC set), question-count (not one question), bad-label, name-too-long, not-address-query (not A or AAAA of class IN), unsolicited (no recorded query: spoofed, late or repeated), server (not a server named), unparsed (not one whole UDP datagram), no-set (a name in no domain set).",
            &refused,
        )?;
        gauges(
            encoder,
            "gotofw_dns_learned_addresses",
            "Addresses in the learned table that a domain rule admits now (unexpired for one of its sets).",
            &each(&|d| d.learned_now as u64),
        )?;
        gauges(
            encoder,
            "gotofw_dns_learned_table_size",
            "Most addresses the learned table holds; when full, the least recently used go.",
            &each(&|d| u64::from(d.table_size)),
        )
    }
}

/// The labels of each counter of `s`.
fn rule_labels(s: &InterfaceStatus) -> Vec<(Labels<'_>, &status_model::CounterStatus)> {
    s.counters
        .iter()
        .map(|c| {
            (
                vec![
                    ("interface", s.interface.as_str()),
                    ("rule", c.name.as_str()),
                    ("kind", c.kind.as_str()),
                    ("action", c.action.as_str()),
                    ("direction", c.direction),
                ],
                c,
            )
        })
        .collect()
}

fn gauges(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(Labels<'_>, u64)],
) -> Result<(), std::fmt::Error> {
    if samples.is_empty() {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        ConstGauge::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

fn counters(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(Labels<'_>, u64)],
) -> Result<(), std::fmt::Error> {
    if samples.is_empty() {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in samples {
        ConstCounter::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

/// Listens on `addr`, with an error that says what to change.
pub async fn bind(addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} for metrics: pick another address or port (--listen, or [metrics] listen)")
    })
}

/// Serves `GET /metrics` (and a pointer to it at `/`) on `listener` until the task is dropped;
/// each scrape reads the filters `scope` names at that moment.
pub async fn serve(listener: TcpListener, scope: Arc<RwLock<Scope>>) {
    serve_with(listener, scope, Arc::new(RwLock::new(None))).await;
}

/// [`serve`], with the service's reload state in each scrape.
pub async fn serve_with(listener: TcpListener, scope: Arc<RwLock<Scope>>, reload: SharedReload) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, say: wait a little rather than spin.
                eprintln!("gotofw: metrics: accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let scope = Arc::clone(&scope);
        let reload = Arc::clone(&reload);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                respond(request, Arc::clone(&scope), Arc::clone(&reload))
            });
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn respond(
    request: Request<Incoming>,
    scope: Arc<RwLock<Scope>>,
    reload: SharedReload,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let readable = matches!(*request.method(), Method::GET | Method::HEAD);
    let reply = |code, kind, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = code;
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, header::HeaderValue::from_static(kind));
        response
    };
    let text = "text/plain; charset=utf-8";
    Ok(match request.uri().path() {
        "/metrics" if readable => {
            let scope = scope.read().map_or(Scope::All, |s| s.clone());
            // A poisoned lock (a panic while it was written) cannot say: report a failure.
            let reload = reload.read().map_or(
                Some(ReloadState {
                    successful: false,
                    success_at: 0,
                }),
                |r| *r,
            );
            let scraped = tokio::task::spawn_blocking(move || {
                gather(&scope).and_then(|mut snapshot| {
                    snapshot.reload = reload;
                    render(snapshot)
                })
            })
            .await
            .unwrap_or_else(|e| Err(anyhow::anyhow!("the scrape task failed: {e}")));
            match scraped {
                Ok(body) => reply(StatusCode::OK, CONTENT_TYPE, body),
                Err(e) => reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    text,
                    format!("gotofw: reading the counters failed: {e:#}\n"),
                ),
            }
        }
        "/" if readable => reply(
            StatusCode::OK,
            text,
            "gotofw: the counters are at /metrics\n".to_owned(),
        ),
        "/" | "/metrics" => {
            let mut response = reply(StatusCode::METHOD_NOT_ALLOWED, text, "use GET\n".to_owned());
            response
                .headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
            response
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            text,
            "not found: the counters are at /metrics\n".to_owned(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        loader::XdpModeArg,
        status_model::{CounterStatus, FlowSummary},
    };

    fn counter(name: &str, direction: &'static str, packets: u64) -> CounterStatus {
        CounterStatus {
            name: name.into(),
            kind: "scenario".into(),
            action: "allow".into(),
            direction,
            packets,
            bytes: packets * 100,
            protocol: None,
            ports: None,
            local_ports: None,
            networks: None,
        }
    }

    fn dns() -> status_model::DnsStatus {
        use filter_common::learn::{LearnedValue, stat};
        let mut stats = [0u64; stat::ENTRIES as usize];
        for (slot, n) in [
            (stat::QUERIES, 12),
            (stat::ANSWERS, 11),
            (stat::LEARNED, 30),
            (stat::REFUSED_UNSOLICITED, 3),
            (stat::LEARN_FAILED, 2),
            (stat::MISSED, 1),
        ] {
            stats[slot as usize] = n;
        }
        let mut live = LearnedValue::default();
        live.expires_ns[0] = 200;
        let mut expired = LearnedValue::default();
        expired.expires_ns[0] = 50;
        let key = |last: u8| filter_common::learn::AddrKey {
            addr: [198, 51, 100, last, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            family: 4,
            _pad: [0; 3],
        };
        status_model::DnsStatus::new(
            vec!["goto".into()],
            &stats,
            &[(key(1), live), (key(2), expired)],
            4096,
            100,
        )
    }

    /// Every reason is a series of its own, zero included; the status line names the nonzero
    /// ones.
    #[test]
    fn dns_status_counts_every_reason() {
        let d = dns();
        assert_eq!(d.refused.len(), 11);
        assert_eq!(d.refused_total(), 3);
        assert_eq!((d.learned_now, d.learned_entries), (1, 2));
        assert_eq!(
            d.line().unwrap(),
            "dns (sets goto): 12 queries, 11 answers learned from, 30 addresses learned (1 now, table of 4096), 3 refused (unsolicited 3), 2 not taken by the table, 1 missed (tail call failed)"
        );
        assert_eq!(status_model::DnsStatus::default().line(), None);
    }

    #[test]
    fn exposition_has_every_family_and_escapes_labels() {
        let snapshot = Snapshot {
            interfaces: vec![InterfaceStatus {
                interface: "wan\"0".into(),
                key: "wan0".into(),
                ifindex: 3,
                netns: 1,
                present: true,
                filtering: true,
                state: crate::liveness::State::Filtering,
                state_detail: String::new(),
                scenario: "udp-turn".into(),
                mode: crate::loader::FilterMode::Stateful,
                xdp_mode: XdpModeArg::Generic,
                link: "ethernet",
                egress_hook: Some(crate::loader::EgressHook::Tcx),
                log_rate: 10,
                log_samples_lost: Some(9),
                attached_at: 1_795_000_000,
                pin_dir: "/sys/fs/bpf/gotofw/wan0".into(),
                flows: Some(FlowSummary {
                    table_size: 1024,
                    entries: 3,
                    live: 2,
                    limits: None,
                }),
                counters: vec![
                    counter("turn-udp", "ingress", 7),
                    counter("turn-udp", "egress", 5),
                    counter("not-learned", "egress", 4),
                ],
                dns: dns(),
            }],
            missing: vec!["eth9".into()],
            reload: Some(ReloadState {
                successful: false,
                success_at: 1_795_000_100,
            }),
        };
        let text = render(snapshot).unwrap();
        for line in [
            "# TYPE gotofw_rule_packets counter",
            r#"gotofw_rule_packets_total{interface="wan\"0",rule="turn-udp",kind="scenario",action="allow",direction="ingress"} 7"#,
            r#"gotofw_rule_bytes_total{interface="wan\"0",rule="turn-udp",kind="scenario",action="allow",direction="egress"} 500"#,
            r#"gotofw_flow_table_live{interface="wan\"0"} 2"#,
            "# TYPE gotofw_log_samples_lost counter",
            r#"gotofw_log_samples_lost_total{interface="wan\"0"} 9"#,
            r#"gotofw_flow_table_size{interface="wan\"0"} 1024"#,
            r#"gotofw_filter_attached{interface="eth9"} 0"#,
            r#"gotofw_filtering{interface="wan\"0"} 1"#,
            r#"gotofw_filtering{interface="eth9"} 0"#,
            r#"gotofw_filter_state{interface="wan\"0",state="filtering"} 1"#,
            r#"gotofw_filter_info{interface="wan\"0",scenario="udp-turn",mode="stateful",xdp_mode="generic"} 1"#,
            r#"gotofw_rule_packets_total{interface="wan\"0",rule="not-learned",kind="scenario",action="allow",direction="egress"} 4"#,
            "# TYPE gotofw_dns_queries counter",
            r#"gotofw_dns_queries_total{interface="wan\"0"} 12"#,
            r#"gotofw_dns_answers_learned_total{interface="wan\"0"} 11"#,
            r#"gotofw_dns_addresses_learned_total{interface="wan\"0"} 30"#,
            r#"gotofw_dns_learn_failed_total{interface="wan\"0"} 2"#,
            r#"gotofw_dns_answers_missed_total{interface="wan\"0"} 1"#,
            r#"gotofw_dns_answers_refused_total{interface="wan\"0",reason="unsolicited"} 3"#,
            r#"gotofw_dns_answers_refused_total{interface="wan\"0",reason="no-set"} 0"#,
            r#"gotofw_dns_learned_addresses{interface="wan\"0"} 1"#,
            r#"gotofw_dns_learned_table_size{interface="wan\"0"} 4096"#,
            "gotofw_config_last_reload_successful 0",
            "gotofw_config_last_reload_success_timestamp_seconds 1795000100",
            "# EOF",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
    }
}
