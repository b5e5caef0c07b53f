//! SVG charts of a [`Report`], written next to `BENCHMARKS.md` (in [`DIR`]) and linked from it:
//! cost against the network set's size for gotofw, nftables and iptables, gotofw's own cost
//! against the set's size and against the flow table's fill, and the receivers of item 2.
//!
//! Drawn with `plotters`' SVG backend only: text is written as SVG `<text>` elements (the
//! viewer's sans-serif font), so no font library is built or read.

use std::{fs, path::Path};

use anyhow::{Context, Result, anyhow};
use plotters::{coord::Shift, prelude::*};

use crate::{Report, stats::Sample};

/// Where the charts go, relative to the directory of `BENCHMARKS.md`.
pub const DIR: &str = "bench/charts";

/// One chart: file name (in [`DIR`]) and what it shows (the Markdown image's text).
pub struct Chart {
    /// File name.
    pub file: &'static str,
    /// Alternative text and caption.
    pub title: &'static str,
}

/// The charts [`write`] draws, in the order `BENCHMARKS.md` shows them.
pub const CHARTS: [Chart; 5] = [
    Chart {
        file: "prefixes.svg",
        title: "Receiver CPU per dropped packet against network-set size (veth path, log-log)",
    },
    Chart {
        file: "prefixes_test_run.svg",
        title: "gotofw test_run cost against network-set size (stateless XDP)",
    },
    Chart {
        file: "flows.svg",
        title: "gotofw test_run cost against flow-table fill (stateful XDP)",
    },
    Chart {
        file: "flows_veth.svg",
        title: "Receiver CPU per packet against flows in the table: gotofw and nftables conntrack (veth path)",
    },
    Chart {
        file: "peers.svg",
        title: "Receiver CPU per packet on the veth path (item 2)",
    },
];

const WIDTH: u32 = 760;
const FONT: &str = "sans-serif";
const COLOURS: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
];

/// A named line of (x, y) points.
struct Line {
    name: String,
    points: Vec<(f64, f64)>,
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a chart: {e:?}")
}

/// An axis label: a whole number with thousands as "k" (1k, 100k, 1M).
fn number(v: f64) -> String {
    if v >= 1e6 && (v / 1e6).fract() == 0.0 {
        format!("{:.0}M", v / 1e6)
    } else if v >= 1e3 && (v / 1e3).fract() == 0.0 {
        format!("{:.0}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// The (x, median) points of `points` whose median is finite and positive (log axes).
fn line(name: &str, points: impl Iterator<Item = (usize, Sample)>) -> Line {
    Line {
        name: name.to_owned(),
        points: points
            .filter(|(_, s)| s.median.is_finite() && s.median > 0.0)
            .map(|(x, s)| (x as f64, s.median))
            .collect(),
    }
}

/// The range of all points' coordinate `f`, widened for a log axis (never empty).
fn log_range(lines: &[Line], f: fn(&(f64, f64)) -> f64) -> std::ops::Range<f64> {
    let values = lines.iter().flat_map(|l| l.points.iter().map(f));
    let (lo, hi) = values.fold((f64::INFINITY, 0.0_f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo.is_finite() && hi > 0.0 {
        lo / 1.5..hi * 1.5
    } else {
        1.0..10.0
    }
}

/// A line chart of `lines` into `svg`; `log_y` for a logarithmic y axis (x is always log).
fn lines_chart(
    svg: &mut String,
    caption: &str,
    (x_desc, y_desc): (&str, &str),
    lines: &[Line],
    log_y: bool,
) -> Result<()> {
    let root = SVGBackend::with_string(svg, (WIDTH, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let x = log_range(lines, |p| p.0);
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(caption, (FONT, 18))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(70);
    if log_y {
        let y = log_range(lines, |p| p.1);
        let mut chart = builder
            .build_cartesian_2d(x.log_scale(), y.log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_labels(6)
            .y_labels(15)
            .x_label_formatter(&|v| number(*v))
            .y_label_formatter(&|v| number(*v))
            .light_line_style(RGBColor(0xf0, 0xf0, 0xf0))
            .draw()
            .map_err(err)?;
        draw_lines(&mut chart, lines)?;
    } else {
        let top = lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .fold(1.0_f64, f64::max);
        let mut chart = builder
            .build_cartesian_2d(x.log_scale(), 0.0..top * 1.2)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_labels(6)
            .y_labels(8)
            .x_label_formatter(&|v| number(*v))
            .y_label_formatter(&|v| number(*v))
            .light_line_style(RGBColor(0xf0, 0xf0, 0xf0))
            .draw()
            .map_err(err)?;
        draw_lines(&mut chart, lines)?;
    }
    root.present().map_err(err)
}

fn draw_lines<'a, X, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    lines: &[Line],
) -> Result<()>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (i, l) in lines.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(l.points.clone(), colour.stroke_width(2)))
            .map_err(err)?
            .label(l.name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
        chart
            .draw_series(l.points.iter().map(|p| Circle::new(*p, 3, colour.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 13))
        .draw()
        .map_err(err)
}

/// Horizontal bars: one per (name, sample), the median as the bar, min-max as a whisker.
fn bars_chart(
    svg: &mut String,
    caption: &str,
    x_desc: &str,
    bars: &[(String, Sample)],
) -> Result<()> {
    let height = 90 + 34 * bars.len() as u32;
    let root: DrawingArea<SVGBackend, Shift> =
        SVGBackend::with_string(svg, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let top = bars
        .iter()
        .map(|(_, s)| if s.max.is_finite() { s.max } else { 0.0 })
        .fold(1.0_f64, f64::max);
    let n = bars.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, (FONT, 18))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(10)
        .build_cartesian_2d(0.0..top * 1.1, 0.0..n)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_labels(8)
        .x_label_formatter(&|v| number(*v))
        .light_line_style(RGBColor(0xf0, 0xf0, 0xf0))
        .x_desc(x_desc)
        .draw()
        .map_err(err)?;
    for (i, (name, s)) in bars.iter().enumerate() {
        if !s.median.is_finite() {
            continue;
        }
        // Row i from the top.
        let y = n - 1.0 - i as f64;
        let colour = COLOURS[usize::from(name.starts_with("gotofw")) % COLOURS.len()];
        chart
            .draw_series([Rectangle::new(
                [(0.0, y + 0.08), (s.median, y + 0.48)],
                colour.mix(0.8).filled(),
            )])
            .map_err(err)?;
        chart
            .draw_series([PathElement::new(
                vec![(s.min, y + 0.28), (s.max, y + 0.28)],
                BLACK.stroke_width(1),
            )])
            .map_err(err)?;
        chart
            .draw_series([Text::new(
                format!("{name}: {:.0}", s.median),
                (0.0, y + 0.95),
                (FONT, 12),
            )])
            .map_err(err)?;
    }
    root.present().map_err(err)
}

/// The SVG text of every chart in [`CHARTS`], in that order.
pub fn render(r: &Report) -> Result<Vec<String>> {
    let sc = &r.scaling;
    let mut out = Vec::new();

    let mut svg = String::new();
    let veth = [
        line(
            "gotofw (stateless XDP)",
            sc.prefixes
                .iter()
                .map(|p| (p.prefixes, p.drop_ns_per_packet.clone())),
        ),
        line(
            "nftables (netdev ingress, interval set)",
            sc.nft_set
                .iter()
                .map(|p| (p.prefixes, p.ns_per_packet.clone())),
        ),
        line(
            "iptables (raw PREROUTING, one rule per network)",
            sc.iptables_chain
                .iter()
                .map(|p| (p.prefixes, p.ns_per_packet.clone())),
        ),
    ];
    lines_chart(
        &mut svg,
        "UDP 3478 from outside the set: receiver CPU per packet",
        ("prefixes in the set", "ns per packet"),
        &veth,
        true,
    )?;
    out.push(svg);

    let mut svg = String::new();
    let test_run = [
        line(
            "allowed (inside the set)",
            sc.prefixes.iter().map(|p| (p.prefixes, p.hit_ns.clone())),
        ),
        line(
            "blocked (outside the set)",
            sc.prefixes.iter().map(|p| (p.prefixes, p.miss_ns.clone())),
        ),
        line(
            "TC egress to inside (stateful)",
            sc.prefixes
                .iter()
                .map(|p| (p.prefixes, p.egress_hit_ns.clone())),
        ),
    ];
    lines_chart(
        &mut svg,
        "gotofw, BPF_PROG_TEST_RUN by network-set size",
        ("prefixes in the set", "ns per packet"),
        &test_run,
        false,
    )?;
    out.push(svg);

    let mut svg = String::new();
    let flows = [
        line(
            "packet of a live flow",
            sc.flows.iter().map(|p| (p.flows, p.hit_ns.clone())),
        ),
        line(
            "UDP 3478 with no flow (miss)",
            sc.flows.iter().map(|p| (p.flows, p.miss_ns.clone())),
        ),
    ];
    lines_chart(
        &mut svg,
        "gotofw, BPF_PROG_TEST_RUN by flows in the table",
        ("flows in the table", "ns per packet"),
        &flows,
        false,
    )?;
    out.push(svg);

    let mut svg = String::new();
    let v = &sc.veth_flows;
    let veth_flows = [
        line(
            "gotofw, known flow (passed)",
            v.iter().map(|p| (p.flows, p.gotofw_known_ns.clone())),
        ),
        line(
            "gotofw, port-53 flood (dropped)",
            v.iter().map(|p| (p.flows, p.gotofw_flood_ns.clone())),
        ),
        line(
            "nftables ct, known flow (accepted)",
            v.iter().map(|p| (p.flows, p.nft_known_ns.clone())),
        ),
        line(
            "nftables ct, port-53 flood (dropped)",
            v.iter().map(|p| (p.flows, p.nft_flood_ns.clone())),
        ),
    ];
    lines_chart(
        &mut svg,
        "Veth path by flows in the table: receiver CPU per packet",
        ("flows in the table", "ns per packet"),
        &veth_flows,
        true,
    )?;
    out.push(svg);

    let mut svg = String::new();
    let bars: Vec<(String, Sample)> = r
        .pps
        .iter()
        .map(|row| (row.name.to_owned(), row.ns_per_packet.clone()))
        .collect();
    bars_chart(
        &mut svg,
        "Veth path: receiver CPU per packet (median, min-max)",
        "ns per packet",
        &bars,
    )?;
    out.push(svg);
    Ok(out)
}

/// Writes every chart into `dir`/[`DIR`].
pub fn write(r: &Report, dir: &Path) -> Result<()> {
    let charts = dir.join(DIR);
    fs::create_dir_all(&charts).with_context(|| format!("creating {}", charts.display()))?;
    for (chart, svg) in CHARTS.iter().zip(render(r)?) {
        let path = charts.join(chart.file);
        fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The Markdown image link of chart `file` (one of [`CHARTS`]; path relative to
/// `BENCHMARKS.md`).
pub fn link(file: &str) -> String {
    let title = CHARTS
        .iter()
        .find(|c| c.file == file)
        .map_or(file, |c| c.title);
    format!("![{title}]({DIR}/{file})\n\n")
}
