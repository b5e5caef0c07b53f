//! No import cycles between the modules of `filter-user` (issue 11): each file of `src/` is a
//! module, and a module that names another (`use crate::a::b`, `crate::a::b::f()`, `super::x`, `self::x`)
//! depends on the deepest module the path reaches. Test modules (`#[cfg(test)] mod ... { }`),
//! comments and the binary (`main.rs`) do not count. The test fails naming a cycle; the same
//! check as `cargo modules dependencies --acyclic`, without installing it.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
};

/// Module path (`crate`, `loader::meta`) to its dependencies.
type Graph = BTreeMap<String, BTreeSet<String>>;

#[test]
fn modules_have_no_import_cycles() {
    assert_acyclic("filter-user", "src", 20);
}

/// The same for `filter-common`, whose classifier is a module tree too (`classify/`).
#[test]
fn filter_common_modules_have_no_import_cycles() {
    assert_acyclic("filter-common", "../filter-common/src", 8);
}

/// Fails naming every cycle between the modules of crate `name`, whose sources are `src`
/// (relative to this crate), after checking it read more than `min` modules there.
fn assert_acyclic(name: &str, src: &str, min: usize) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(src);
    let graph = graph(&source_files(&src));
    assert!(
        graph.len() > min,
        "read only {} modules in {}",
        graph.len(),
        src.display()
    );
    let cycles = all_cycles(graph);
    assert!(
        cycles.is_empty(),
        "import cycles between modules of {name} (move what they share into a leaf module): {}",
        cycles.join("; ")
    );
}

/// `cmd/` is the leaf layer (issue 11): a command parses, calls the library and prints. So no
/// module names a `cmd::` module but the command's own (`main.rs`, the dispatcher, is not read),
/// and what two commands share lives below `cmd/`.
#[test]
fn commands_are_a_leaf_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = source_files(&src);
    assert!(
        files.keys().filter(|m| command_of(m).is_some()).count() > 10,
        "read only a few command modules in {}",
        src.display()
    );
    let imports = command_imports(&files);
    assert!(
        imports.is_empty(),
        "modules that name a command module (move what they share below cmd/): {}",
        imports.join("; ")
    );
}

/// The command a module belongs to: `cmd::attach` for `cmd::attach` (and any module below it),
/// `cmd` for `cmd` itself, `None` outside `cmd/`.
fn command_of(module: &str) -> Option<String> {
    let mut parts = module.split("::");
    if parts.next() != Some("cmd") {
        return None;
    }
    Some(
        parts
            .next()
            .map_or_else(|| "cmd".to_owned(), |c| format!("cmd::{c}")),
    )
}

/// Every import of `files` (module path to text) that names a command module other than the
/// importer's own command, as `FROM -> TO (PATH)`.
fn command_imports(files: &BTreeMap<String, String>) -> Vec<String> {
    let modules: BTreeSet<&str> = files.keys().map(String::as_str).collect();
    let mut out = BTreeSet::new();
    for (module, text) in files {
        for path in paths(&code(text)) {
            let Some(target) = resolve(&modules, module, &path) else {
                continue;
            };
            let Some(command) = command_of(&target) else {
                continue;
            };
            if command_of(module).as_ref() == Some(&command) {
                continue;
            }
            out.insert(format!("{module} -> {target} ({})", path.join("::")));
        }
    }
    out.into_iter().collect()
}

/// The layer check finds a command naming another command and a library module naming a
/// command, through `super::` and use groups alike, and lets a command name its own modules and
/// the library.
#[test]
fn command_imports_are_found() {
    let files = |status: &str, metrics: &str| {
        BTreeMap::from([
            (
                "crate".to_owned(),
                "pub mod cmd;\npub mod metrics;\npub mod output;\n".to_owned(),
            ),
            (
                "cmd".to_owned(),
                "pub mod status;\npub mod watch;\n".to_owned(),
            ),
            ("cmd::status".to_owned(), status.to_owned()),
            (
                "cmd::watch".to_owned(),
                "use crate::{output::table, cmd::watch::render};\n".to_owned(),
            ),
            (
                "cmd::watch::render".to_owned(),
                "use super::super::watch;\n".to_owned(),
            ),
            ("metrics".to_owned(), metrics.to_owned()),
            ("output".to_owned(), "pub fn table() {}\n".to_owned()),
        ])
    };
    let clean = files("use crate::output;\n", "use crate::output::table;\n");
    assert_eq!(command_imports(&clean), Vec::<String>::new());
    let sibling = files("use super::{watch::render, super::output};\n", "");
    assert_eq!(
        command_imports(&sibling),
        ["cmd::status -> cmd::watch::render (super::watch::render)"]
    );
    let library = files("", "fn f() { crate::cmd::status::collect() }\n");
    assert_eq!(
        command_imports(&library),
        ["metrics -> cmd::status (crate::cmd::status::collect)"]
    );
    let helpers = files("use crate::cmd::table;\n", "");
    assert_eq!(
        command_imports(&helpers),
        ["cmd::status -> cmd (crate::cmd::table)"]
    );
}

/// Cycles of `graph`, one for each edge that closes one: a cycle is listed, its last edge
/// taken out, and the search goes on (bounded by the number of edges).
fn all_cycles(mut graph: Graph) -> Vec<String> {
    let edges: usize = graph.values().map(BTreeSet::len).sum();
    let mut out = Vec::new();
    for _ in 0..edges {
        let Some(cycle) = find_cycle(&graph) else {
            break;
        };
        out.push(cycle.join(" -> "));
        let [.., from, to] = cycle.as_slice() else {
            break;
        };
        if let Some(deps) = graph.get_mut(from) {
            deps.remove(to);
        }
    }
    out
}

/// The check finds a cycle, through `super::`, nested use groups and inline paths alike, and
/// ignores what test modules and comments name.
#[test]
fn cycles_are_found() {
    let files = |b: &str| {
        BTreeMap::from([
            (
                "crate".to_owned(),
                "pub mod a;\npub mod b;\npub mod c;\n".to_owned(),
            ),
            (
                "a".to_owned(),
                "use crate::{b::{self, X}, c};\n// crate::c::Z\n".to_owned(),
            ),
            ("b".to_owned(), b.to_owned()),
            ("c".to_owned(), "pub struct Z;\n".to_owned()),
            (
                "c::d".to_owned(),
                "fn f() { super::super::a::g() }\n".to_owned(),
            ),
        ])
    };
    assert_eq!(find_cycle(&graph(&files("pub struct X;\n"))), None);
    let test_only = "pub struct X;\n#[cfg(test)]\nmod tests {\n    use crate::a;\n}\n";
    assert_eq!(find_cycle(&graph(&files(test_only))), None);
    let cycle = find_cycle(&graph(&files("fn f() -> crate::c::d::T { todo!() }\n"))).unwrap();
    assert_eq!(cycle, ["a", "b", "c::d", "a"]);
}

/// Every `.rs` file under `src` but `main.rs`, by module path, with its text.
fn source_files(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            match parts.last().map(String::as_str) {
                Some("main") if parts.len() == 1 => continue,
                Some("lib") if parts.len() == 1 => parts.clear(),
                Some("mod") => {
                    parts.pop();
                }
                _ => {}
            }
            let module = if parts.is_empty() {
                "crate".to_owned()
            } else {
                parts.join("::")
            };
            out.insert(module, fs::read_to_string(&path).unwrap());
        }
    }
    out
}

/// The dependency graph of `files` (module path to text).
fn graph(files: &BTreeMap<String, String>) -> Graph {
    let modules: BTreeSet<&str> = files.keys().map(String::as_str).collect();
    let mut graph = Graph::new();
    for (module, text) in files {
        let deps = graph.entry(module.clone()).or_default();
        for path in paths(&code(text)) {
            if let Some(target) = resolve(&modules, module, &path)
                && target != *module
            {
                deps.insert(target);
            }
        }
    }
    graph
}

/// `text` without comments and without its test modules.
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed == "#[cfg(test)]" {
            // A test module ends at the `}` at its own indentation (rustfmt's layout).
            let indent = &line[..line.len() - trimmed.len()];
            let end = format!("{indent}}}");
            for inner in lines.by_ref() {
                if inner == end {
                    break;
                }
            }
            continue;
        }
        let code = trimmed.split("//").next().unwrap_or_default();
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// Every path `code` names from `crate::`, `super::` or `self::`, with `use` groups expanded:
/// `use crate::{a::{b, c}, d}` gives `crate::a::b`, `crate::a::c`, `crate::d`.
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &code[i..];
        let at_word = i == 0 || !is_ident(bytes[i - 1]) && bytes[i - 1] != b':';
        if at_word
            && ["crate::", "super::", "self::"]
                .iter()
                .any(|p| rest.starts_with(p))
        {
            let (tree, len) = use_tree(rest);
            out.extend(tree);
            i += len.max(1);
        } else {
            i += 1;
        }
    }
    out
}

const fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Parses the path or use tree at the start of `s`; returns its expanded paths and its length.
fn use_tree(s: &str) -> (Vec<Vec<String>>, usize) {
    let bytes = s.as_bytes();
    let mut prefix = Vec::new();
    let mut i = 0;
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == b'{' {
            // A group: each member is a tree of its own under `prefix`.
            i += 1;
            let mut out = Vec::new();
            loop {
                while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b',') {
                    i += 1;
                }
                if i >= bytes.len() || bytes[i] == b'}' {
                    return (out, i + 1);
                }
                let (members, len) = use_tree(&s[i..]);
                for member in members {
                    let mut path = prefix.clone();
                    path.extend(member);
                    out.push(path);
                }
                i += len.max(1);
            }
        }
        let start = i;
        while i < bytes.len() && is_ident(bytes[i]) {
            i += 1;
        }
        if i == start {
            return (vec![prefix], i);
        }
        let segment = &s[start..i];
        if segment != "self" || prefix.is_empty() {
            prefix.push(segment.to_owned());
        }
        if s[i..].starts_with("::") {
            i += 2;
        } else {
            return (vec![prefix], i);
        }
    }
}

/// The deepest module of `modules` that `path`, named in `from`, reaches.
fn resolve(modules: &BTreeSet<&str>, from: &str, path: &[String]) -> Option<String> {
    let mut at: Vec<&str> = Vec::new();
    let mut segments = path.iter().map(String::as_str).peekable();
    match segments.peek() {
        Some(&"crate") => {
            segments.next();
        }
        Some(&"super") => {
            at = if from == "crate" {
                return None;
            } else {
                from.split("::").collect()
            };
            while segments.peek() == Some(&"super") {
                segments.next();
                at.pop()?;
            }
        }
        Some(&"self") => {
            segments.next();
            if from != "crate" {
                at = from.split("::").collect();
            }
        }
        _ => return None,
    }
    for segment in segments {
        let mut next = at.clone();
        next.push(segment);
        if modules.contains(next.join("::").as_str()) {
            at = next;
        } else {
            break;
        }
    }
    Some(if at.is_empty() {
        "crate".to_owned()
    } else {
        at.join("::")
    })
}

/// A cycle of `graph`, as the modules along it (the first one again at the end), if any.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        graph: &Graph,
        node: &str,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = stack.iter().position(|n| n == node)?;
                let mut cycle = stack[start..].to_vec();
                cycle.push(node.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.to_owned(), Mark::Open);
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(graph, next, marks, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        marks.insert(node.to_owned(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(graph, node, &mut marks, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}
