//! Every public function that returns a `Result` says when it fails: its rustdoc has an
//! `# Errors` section. Checked over the source text of the library (not the CLI, not the
//! private `sys`, `trust`, `names`, `payload` internals' `pub(crate)` items): a `pub fn`
//! or `pub async fn`, or a provided method of a `pub trait`, whose signature returns
//! `Result` (a builder setter that only takes a closure returning one is not counted).

mod common;

use std::path::Path;

/// The signature starting at line `i`: up to its body or its `;`.
fn signature(lines: &[&str], i: usize) -> String {
    let mut sig = String::new();
    for line in &lines[i..] {
        sig.push_str(line);
        if line.contains('{') || line.trim_end().ends_with(';') {
            break;
        }
    }
    sig.split('{').next().unwrap_or("").to_owned()
}

/// Whether a signature's return type is a `Result` (or a future of one).
fn returns_result(sig: &str) -> bool {
    let Some((_, ret)) = sig.rsplit_once(") ->") else {
        return false;
    };
    let ret = ret.split(" where").next().unwrap_or(ret).trim();
    ret.starts_with("Result")
        || ret.contains("::Result<")
        || ret.starts_with("impl Future<Output = Result")
        || ret.starts_with("impl Future<Output = (Self, Result")
}

/// The doc comment lines just above line `i`, attributes skipped.
fn doc_above<'a>(lines: &[&'a str], i: usize) -> Vec<&'a str> {
    let mut k = i;
    while k > 0 && lines[k - 1].trim_start().starts_with("#[") {
        k -= 1;
    }
    let mut doc = Vec::new();
    while k > 0 && lines[k - 1].trim_start().starts_with("///") {
        k -= 1;
        doc.push(lines[k]);
    }
    doc
}

/// `file:line name` of each public function returning `Result` without `# Errors`.
fn undocumented(name: &str, text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut in_pub_trait = false;
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with("pub trait ") {
            in_pub_trait = true;
        } else if line.starts_with('}') {
            in_pub_trait = false;
        }
        let t = line.trim_start();
        let public = t.starts_with("pub fn ") || t.starts_with("pub async fn ");
        let provided = in_pub_trait && line.starts_with("    fn ");
        if !(public || provided) || !returns_result(&signature(&lines, i)) {
            continue;
        }
        if !doc_above(&lines, i).iter().any(|d| d.contains("# Errors")) {
            let f = t.split('(').next().unwrap_or(t).trim_end();
            out.push(format!("{name}:{} {f}", i + 1));
        }
    }
    out
}

#[test]
fn every_public_fn_returning_result_documents_its_errors() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut missing = Vec::new();
    let mut checked = 0;
    for file in common::rust_files(&src) {
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        // The CLI's `run` functions and the object builders' macro-made setters are
        // not library API.
        if rel.starts_with("bin") || rel.starts_with("sys") || rel == "object/options.rs" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        checked += text.matches("pub fn ").count();
        missing.extend(undocumented(&rel, &text));
    }
    assert!(
        checked > 100,
        "scanned {checked} public fns: is this the crate?"
    );
    assert!(
        missing.is_empty(),
        "no `# Errors` section:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_check_catches_a_missing_section() {
    let text = "/// Saves.\npub fn save(&self) -> Result<()> {\n}\n\n\
                /// Loads.\n///\n/// # Errors\n///\n/// When.\npub fn load() -> Result<u8> {\n}\n\n\
                /// A setter.\npub fn validate(self, f: impl Fn() -> Result<()>) -> Self {\n}\n\n\
                pub trait P {\n    /// Provided.\n    fn go() -> Result<()> {\n    }\n}\n";
    assert_eq!(
        undocumented("x.rs", text),
        ["x.rs:2 pub fn save", "x.rs:19 fn go"]
    );
}
