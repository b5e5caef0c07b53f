//! Makes the kernel match a resolved configuration on one interface, as `gotofw run` does at
//! start, on SIGHUP and when it repairs a filter, and `gotofw reload` does: attach where there
//! is no filter, attach anew one that is not filtering, swap the rule set in where the attached
//! one differs, and keep an equal one (its counters and flows go on).

use crate::{
    config::Resolved,
    liveness,
    loader::{self, AttachPlan, Attached, XdpModeArg},
    plan::build_plan,
    system,
};

/// Makes the filter on `iface` enforce `resolved` (see the module's doc). Returns what it did, a
/// line each (`IFACE: ...`), for the caller to log.
pub fn interface(resolved: &Resolved, iface: &str) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    let exists = system::key_dir(&system::key_for(iface)?)?.exists();
    let plan = build_plan(
        iface,
        &resolved.options,
        resolved.mode,
        resolved.xdp_mode,
        exists,
    )?;
    if exists {
        let attached = loader::read_attached(iface)?;
        let health = liveness::of(&attached);
        if !health.filtering() {
            // The attach removes it and attaches anew (and says so).
            let meta = loader::attach(&plan)?;
            lines.push(format!(
                "{iface}: attached anew ({} {}, xdp {}); the filter was {}",
                meta.scenario,
                meta.mode,
                meta.xdp_mode.name(),
                health.text()
            ));
            return Ok(lines);
        }
        if same_rule_set(&attached, &plan)? {
            if plan.xdp_mode != XdpModeArg::Auto && plan.xdp_mode != attached.meta.xdp_mode {
                lines.push(format!(
                    "{iface}: the filter runs in {} XDP mode, not the file's {}; a swap keeps the mode: detach it and restart the service to change it",
                    attached.meta.xdp_mode.name(),
                    plan.xdp_mode.name()
                ));
            }
            lines.push(format!(
                "{iface}: the attached filter already has this rule set ({} {}): kept, counters and flows go on",
                attached.meta.scenario, attached.meta.mode
            ));
            return Ok(lines);
        }
        let meta = loader::attach(&plan)?;
        lines.push(format!(
            "{iface}: swapped in the new rule set atomically ({} {}; was {} {})",
            meta.scenario, meta.mode, attached.meta.scenario, attached.meta.mode
        ));
    } else {
        let meta = loader::attach(&plan)?;
        lines.push(format!(
            "{iface}: attached ({} {}, xdp {})",
            meta.scenario,
            meta.mode,
            meta.xdp_mode.name()
        ));
    }
    Ok(lines)
}

/// Whether the attached filter enforces exactly what `plan` would: the same record (less when
/// and where it was attached) and the same configuration entry (less its generation).
fn same_rule_set(attached: &Attached, plan: &AttachPlan) -> anyhow::Result<bool> {
    let strip = |meta: &loader::Meta| -> anyhow::Result<serde_json::Value> {
        let mut value = serde_json::to_value(meta)?;
        if let Some(map) = value.as_object_mut() {
            for volatile in [
                "attached_at",
                "xdp_mode",
                "egress_hook",
                "clsact_qdisc",
                "ifindex",
                "netns",
                "interface",
            ] {
                map.remove(volatile);
            }
        }
        Ok(value)
    };
    if strip(&attached.meta)? != strip(&plan.meta)? {
        return Ok(false);
    }
    // A stateless filter attached by a gotofw before egress filtering in stateless mode has no
    // egress hook: swapping the same rule set in puts one on.
    if plan.compiled.config.mode != filter_common::MODE_INGRESS_ONLY
        && attached.meta.egress_hook.is_none()
    {
        return Ok(false);
    }
    let mut now = attached.config()?;
    let mut wanted = plan.compiled.config;
    now.generation = 0;
    wanted.generation = 0;
    Ok(now == wanted)
}
