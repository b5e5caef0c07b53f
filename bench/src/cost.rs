//! Program cost: BPF_PROG_TEST_RUN with a large repeat, nanoseconds per packet as the kernel
//! reports it (the mean of the repetitions of one call).

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use aya::programs::{SchedClassifier, TestRun, TestRunOptions, Xdp};
use filter_common::ipproto;
use filter_user::compile::Mode;
use serde::Serialize;

use crate::{Settings, baselines::XdpFilter, frames, gotofw, lab::VethLab, stats::Sample};

/// One BPF_PROG_TEST_RUN of `frame`, `repeat` times: (ns per packet, return value).
pub fn xdp_cost(prog: &Xdp, frame: &[u8], repeat: u32) -> Result<(f64, u32)> {
    let r = prog
        .test_run(TestRunOptions {
            data_in: Some(frame),
            repeat,
            ..TestRunOptions::new()
        })
        .context("BPF_PROG_TEST_RUN")?;
    Ok((r.duration.as_secs_f64() * 1e9, r.return_value))
}

/// As [`xdp_cost`], for a TC program.
pub fn tc_cost(prog: &SchedClassifier, frame: &[u8], repeat: u32) -> Result<(f64, u32)> {
    let r = prog
        .test_run(TestRunOptions {
            data_in: Some(frame),
            repeat,
            ..TestRunOptions::new()
        })
        .context("BPF_PROG_TEST_RUN (tc)")?;
    Ok((r.duration.as_secs_f64() * 1e9, r.return_value))
}

/// The name of an XDP return value.
pub fn verdict(code: u32) -> &'static str {
    match code {
        0 => "aborted",
        1 => "drop",
        2 => "pass",
        3 => "tx",
        4 => "redirect",
        _ => "?",
    }
}

/// Size of a loaded program as the kernel reports it (`bpf_prog_info`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProgSize {
    /// Program id.
    pub id: u32,
    /// Instructions after the verifier's rewrites (`bpftool prog dump xlated`).
    pub xlated_insns: u64,
    /// Bytes of JIT-compiled code.
    pub jited_bytes: u64,
    /// Instructions the verifier processed (all paths).
    pub verified_insns: u64,
}

/// Reads [`ProgSize`] of `prog`.
pub fn prog_size(prog: &Xdp) -> ProgSize {
    let Ok(info) = prog.info() else {
        return ProgSize::default();
    };
    ProgSize {
        id: info.id(),
        xlated_insns: u64::from(info.size_translated().unwrap_or(0) / 8),
        jited_bytes: u64::from(info.size_jitted()),
        verified_insns: u64::from(info.verified_instruction_count().unwrap_or(0)),
    }
}

/// A program column of the cost table.
#[derive(Clone, Debug, Serialize)]
pub struct Column {
    /// Short key.
    pub key: &'static str,
    /// Name in the table.
    pub name: &'static str,
    /// Its size.
    pub size: ProgSize,
}

/// One cell: a program on a packet class.
#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    /// ns per packet over the runs.
    pub ns: Sample,
    /// What the program returned.
    pub verdict: &'static str,
}

/// The program-cost table: classes × programs, and the ratios gotofw / parse-only floor.
#[derive(Clone, Debug, Serialize)]
pub struct CostTable {
    /// BPF_PROG_TEST_RUN repetitions per call.
    pub repeat: u32,
    /// The packet classes, in order.
    pub classes: Vec<frames::Class>,
    /// The programs, in order.
    pub columns: Vec<Column>,
    /// `cells[class][program]`.
    pub cells: BTreeMap<String, BTreeMap<String, Cell>>,
    /// Per class: gotofw (stateful, the default mode) / parse-only floor, per run.
    pub stateful_vs_parse_floor: BTreeMap<String, Sample>,
    /// Per class: gotofw (stateless) / parse-only floor, per run.
    pub stateless_vs_parse_floor: BTreeMap<String, Sample>,
    /// Per class: xdp-filter / gotofw (stateful), per run.
    pub xdp_filter_vs_gotofw: BTreeMap<String, Sample>,
}

/// Measures item 1: every class through the empty floor, the parse-only floor, gotofw
/// (stateless and stateful, with the known flow in its table) and xdp-filter.
pub fn program_cost(settings: &Settings, lab: &VethLab) -> Result<CostTable> {
    let classes = frames::classes();
    let stateless = gotofw::load(&gotofw::bench_rules(None), &Mode::Stateless)?;
    let mut stateful = gotofw::load(
        &gotofw::bench_rules(None),
        &Mode::Stateful(gotofw::limits(262_144)),
    )?;
    let (_, key) = frames::known_flow();
    gotofw::fill_flows(
        &mut stateful,
        1,
        (&key, &gotofw::live_flow(gotofw::HTTPS_RULE, ipproto::TCP)),
    )?;
    let (_, turn_key) = frames::turn_flow();
    gotofw::add_flow(
        &mut stateful,
        &turn_key,
        &gotofw::live_flow(gotofw::TURN_RULE, ipproto::UDP),
    )
    .context("adding the TURN flow")?;
    let mut floors = gotofw::bench_object()?;
    gotofw::extra(&mut floors, "gotofw_floor")?;
    gotofw::extra(&mut floors, "gotofw_parse_floor")?;
    let filter = XdpFilter::load(&lab.rx_ns, &lab.rx_end.name)?;
    let xdp_filter = filter.program()?;
    drop(filter);

    let progs: Vec<(&'static str, &'static str, &Xdp)> = vec![
        (
            "floor",
            "empty XDP_DROP",
            floors.program("gotofw_floor").unwrap().try_into()?,
        ),
        (
            "parse_floor",
            "parse-only floor",
            floors.program("gotofw_parse_floor").unwrap().try_into()?,
        ),
        (
            "gotofw_stateful",
            "gotofw (stateful, default)",
            stateful.program("gotofw_ingress").unwrap().try_into()?,
        ),
        (
            "gotofw_stateless",
            "gotofw --stateless",
            stateless.program("gotofw_ingress").unwrap().try_into()?,
        ),
        ("xdp_filter", "xdp-filter", &xdp_filter),
    ];
    let columns = progs
        .iter()
        .map(|(key, name, prog)| Column {
            key,
            name,
            size: prog_size(prog),
        })
        .collect();
    let mut runs: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    let mut verdicts: BTreeMap<(String, String), u32> = BTreeMap::new();
    for _ in 0..settings.runs {
        for class in &classes {
            for (key, _, prog) in &progs {
                let (ns, ret) = xdp_cost(prog, &class.frame, settings.repeat)?;
                let id = (class.key.to_owned(), (*key).to_owned());
                runs.entry(id.clone()).or_default().push(ns);
                verdicts.insert(id, ret);
            }
        }
    }
    let mut cells: BTreeMap<String, BTreeMap<String, Cell>> = BTreeMap::new();
    for ((class, prog), values) in runs {
        let verdict = verdict(verdicts[&(class.clone(), prog.clone())]);
        cells.entry(class).or_default().insert(
            prog,
            Cell {
                ns: Sample::of(values),
                verdict,
            },
        );
    }
    let ratio = |num: &str, den: &str| -> BTreeMap<String, Sample> {
        cells
            .iter()
            .map(|(class, row)| (class.clone(), row[num].ns.ratio_to(&row[den].ns)))
            .collect()
    };
    Ok(CostTable {
        repeat: settings.repeat,
        stateful_vs_parse_floor: ratio("gotofw_stateful", "parse_floor"),
        stateless_vs_parse_floor: ratio("gotofw_stateless", "parse_floor"),
        xdp_filter_vs_gotofw: ratio("xdp_filter", "gotofw_stateful"),
        classes,
        columns,
        cells,
    })
}
