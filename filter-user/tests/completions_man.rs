//! Shell completions and man pages, both generated from the clap definitions: every visible
//! subcommand appears in each, the scripts parse in their shells (where installed) and the man
//! pages render with `man -l` (or at least carry a roff header).

use std::{
    env, fs,
    path::{Path, PathBuf},
    process::{Command, Output},
};

fn gotofw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gotofw"))
        .args(args)
        .output()
        .expect("run gotofw")
}

/// The names of the subcommands `--help` shows, from the same definitions the binary uses.
fn visible_subcommands() -> Vec<String> {
    let names: Vec<String> = filter_user::cli::command()
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_name().to_owned())
        .collect();
    for expected in ["scenarios", "attach", "domains", "pac", "completions"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not in {names:?}"
        );
    }
    names
}

fn on_path(program: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

fn completion(shell: &str) -> String {
    let out = gotofw(&["completions", shell]);
    assert!(
        out.status.success(),
        "completions {shell}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 script")
}

#[test]
fn completions_name_every_subcommand() {
    let subcommands = visible_subcommands();
    for shell in ["bash", "zsh", "fish"] {
        let script = completion(shell);
        assert!(script.lines().count() > 10, "{shell}: script too short");
        assert!(script.contains("gotofw"), "{shell}");
        for sub in &subcommands {
            assert!(script.contains(sub.as_str()), "{shell} script lacks {sub}");
        }
        // Options of the new commands complete too.
        for option in ["proxy", "training", "format"] {
            assert!(script.contains(option), "{shell} script lacks --{option}");
        }
    }
    let out = gotofw(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
}

/// Writes `script` to a file and checks it with `SHELL -n` when that shell is installed.
fn shell_parses(shell: &str, script: &str) {
    let Some(program) = on_path(shell) else {
        eprintln!("{shell} not installed: not checking its completion script's syntax");
        return;
    };
    let dir = Scratch::new(&format!("complete-{shell}"));
    let file = dir.0.join("gotofw.completion");
    fs::write(&file, script).unwrap();
    let out = Command::new(program).arg("-n").arg(&file).output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{shell} -n: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn completion_scripts_parse() {
    for shell in ["bash", "zsh", "fish"] {
        shell_parses(shell, &completion(shell));
    }
}

#[test]
fn bash_completes_subcommands_and_options() {
    if on_path("bash").is_none() {
        eprintln!("bash not installed: skipped");
        return;
    }
    let script = completion("bash");
    let dir = Scratch::new("complete-run");
    let file = dir.0.join("gotofw.bash");
    fs::write(&file, script).unwrap();
    // Simulate completing `gotofw pa<TAB>` and `gotofw pac --tr<TAB>`.
    let probe = r#"
        source "$1"
        COMP_WORDS=(gotofw pa); COMP_CWORD=1; COMP_LINE="gotofw pa"; COMP_POINT=${#COMP_LINE}
        _gotofw gotofw pa gotofw; echo "1:${COMPREPLY[*]}"
        COMP_WORDS=(gotofw pac --tr); COMP_CWORD=2; COMP_LINE="gotofw pac --tr"; COMP_POINT=${#COMP_LINE}
        _gotofw gotofw --tr pac; echo "2:${COMPREPLY[*]}"
    "#;
    let out = Command::new("bash")
        .args(["-c", probe, "probe"])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |n: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(n))
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(line("1:"), "pac", "{text}");
    assert_eq!(line("2:"), "--training", "{text}");
}

#[test]
fn bash_completes_scenario_names_and_hides_the_man_command() {
    if on_path("bash").is_none() {
        eprintln!("bash not installed: skipped");
        return;
    }
    let dir = Scratch::new("complete-values");
    let file = dir.0.join("gotofw.bash");
    fs::write(&file, completion("bash")).unwrap();
    // A file whose name a file-name completion would offer.
    fs::write(dir.0.join("udp-turn.txt"), "").unwrap();
    // `t WORD...` completes the last word as bash would and prints `[WORDS] -> REPLIES`.
    let probe = r#"
        source "$1"; cd "$2"
        t() {
            COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
            COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMPREPLY=()
            _gotofw gotofw "${COMP_WORDS[$COMP_CWORD]}" "${COMP_WORDS[$COMP_CWORD - 1]}"
            echo "$1:${COMPREPLY[*]}"
        }
        t 1 gotofw attach eth1 --scenario ''
        t 2 gotofw attach eth1 --scenario udp
        t 3 gotofw explain --scenario ''
        t 4 gotofw set-scenario eth1 ''
        t 5 gotofw set-scenario eth1 tcp
        t 6 gotofw m
        t 7 gotofw help ''
    "#;
    let out = Command::new("bash")
        .args(["-c", probe, "probe"])
        .arg(&file)
        .arg(&dir.0)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let replies = |n: &str| -> Vec<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{n}:")))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    let scenarios = ["no-restrictions", "udp-turn", "tcp-turn", "tcp-443"];
    for n in ["1", "3"] {
        assert_eq!(replies(n), scenarios, "{text}");
    }
    assert_eq!(replies("2"), ["udp-turn"], "{text}");
    let names = replies("4");
    for name in scenarios {
        assert!(names.iter().any(|n| n == name), "set-scenario: {text}");
    }
    assert!(!names.iter().any(|n| n.contains(".txt")), "{text}");
    assert_eq!(replies("5"), ["tcp-turn", "tcp-443"], "{text}");
    assert_eq!(replies("6"), ["metrics"], "{text}");
    let help = replies("7");
    assert!(help.iter().any(|n| n == "attach"), "{text}");
    assert!(!help.iter().any(|n| n == "man"), "{text}");
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = env::temp_dir().join(format!("gotofw-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Renders `page` with `man -l` (plain text, no pager) and returns the text.
fn render(man: &Path, page: &Path) -> String {
    let out = Command::new(man)
        .args(["--warnings", "-l", "-P", "cat"])
        .arg(page)
        .env("MANWIDTH", "100")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "man -l {}: {stderr}", page.display());
    assert!(
        stderr.trim().is_empty(),
        "man -l {} warned: {stderr}",
        page.display()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn man_pages_for_gotofw_and_every_subcommand() {
    let dir = Scratch::new("man");
    let out_dir = dir.0.join("man");
    let out = gotofw(&["man", "--out", out_dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut expected: Vec<PathBuf> = visible_subcommands()
        .iter()
        .map(|s| out_dir.join(format!("gotofw-{s}.8")))
        .chain([out_dir.join("gotofw.8")])
        .collect();
    expected.sort();
    let mut written: Vec<PathBuf> = fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    written.sort();
    assert_eq!(written, expected, "the hidden `man` command gets no page");
    let listed: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(PathBuf::from)
        .collect();
    assert_eq!(listed, expected);

    for page in &written {
        let roff = fs::read_to_string(page).unwrap();
        let stem = page.file_stem().unwrap().to_str().unwrap();
        assert!(
            roff.lines()
                .any(|l| l.starts_with(&format!(".TH {stem} 8 "))),
            "{stem}: no .TH header"
        );
        assert!(
            roff.contains(".SH NAME") && roff.contains(".SH SYNOPSIS"),
            "{stem}"
        );
        assert!(roff.contains("EXAMPLES:"), "{stem}: no examples");
    }

    let Some(man) = on_path("man") else {
        eprintln!("man not installed: checked the roff headers only");
        return;
    };
    let text = render(&man, &out_dir.join("gotofw-pac.8"));
    for needle in [
        "NAME",
        "gotofw-pac",
        "--proxy",
        "--else",
        "EXAMPLES:",
        "gotofw pac --direct",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
    let text = render(&man, &out_dir.join("gotofw.8"));
    assert!(text.contains("gotofw-domains(8)"), "{text}");
}
