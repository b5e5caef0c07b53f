//! `gotofw man` (hidden): writes the man pages, generated from the clap definitions, for
//! `cargo xtask man`. The pages are `gotofw.8` and `gotofw-COMMAND.8` for every visible command:
//! section 8, system administration, as for nft(8) and ip(8), since gotofw is a root tool (the
//! Debian package installs it as /usr/sbin/gotofw).

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

use anyhow::Context as _;

use crate::{
    cli::{self, ManArgs},
    output::print,
};

/// The manual section of every page (and the file names' extension).
pub const SECTION: &str = "8";

/// Renders `cmd` and its visible subcommands, depth first, into `dir`; collects the paths.
fn render(cmd: clap::Command, dir: &Path, pages: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for sub in cmd.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        render(sub.clone(), dir, pages)?;
    }
    let page = clap_mangen::Man::new(cmd)
        .section(SECTION)
        .source(format!("gotofw {}", env!("CARGO_PKG_VERSION")))
        .manual("gotofw manual");
    let path = page
        .generate_to(dir)
        .with_context(|| format!("writing a man page into {} failed", dir.display()))?;
    pages.push(path);
    Ok(())
}

/// Writes every page into `dir` (created if missing) and returns their paths, sorted.
pub fn write_pages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("creating {} failed", dir.display()))?;
    let mut cmd = cli::command().disable_help_subcommand(true);
    // Building fills in each subcommand's display name (`gotofw-attach`), the page's name.
    cmd.build();
    let mut pages = Vec::new();
    render(cmd, dir, &mut pages)?;
    pages.sort();
    Ok(pages)
}

/// Runs the command: writes the pages and lists them.
pub fn run(args: &ManArgs) -> anyhow::Result<()> {
    let pages = write_pages(&args.out)?;
    let mut list = String::new();
    for page in &pages {
        let _ = writeln!(list, "{}", page.display());
    }
    Ok(print(&list)?)
}
