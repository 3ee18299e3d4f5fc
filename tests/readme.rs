//! The README opens with the two commands, CI runs exactly the second, and
//! every link between the project's Markdown files resolves.

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The bodies of fenced `sh` code blocks, in order.
fn sh_blocks(md: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in md.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```sh") => current = Some(Vec::new()),
            (Some(b), l) if l.starts_with("```") => {
                blocks.push(b.join("\n"));
                current = None;
            }
            (Some(b), _) => b.push(line),
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn readme_opens_with_the_two_commands_and_ci_runs_the_second() {
    let readme = read("README.md");
    let blocks = sh_blocks(&readme);
    assert!(blocks.len() >= 2, "README needs two sh blocks first");
    assert_eq!(blocks[0].trim(), "cargo run --release -- serve");
    let ci = read(".ci/run");
    let ci_command = ci
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap()
        .trim();
    assert_eq!(
        blocks[1].trim(),
        ci_command,
        ".ci/run must run the README's test command"
    );
    // Nothing else comes before the two commands but the title and a blurb.
    let before_first = &readme[..readme.find("```sh").unwrap()];
    assert!(
        before_first
            .lines()
            .filter(|l| l.starts_with("## "))
            .count()
            == 0
    );
}

#[test]
fn readme_documents_every_metadata_key() {
    let readme = read("README.md");
    for key in foresight::config::known_keys() {
        assert!(
            readme.contains(&format!("`{key}`")),
            "README does not document `{key}`"
        );
    }
}

/// A heading's anchor as GitHub makes it: lower case, spaces to hyphens,
/// other punctuation (backticks, colons, dots) dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The text of `md` outside fenced code blocks, line by line.
fn prose(md: &str) -> Vec<&str> {
    let mut fenced = false;
    md.lines()
        .filter(|l| {
            if l.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// The relative targets of `md`'s inline links, `](target)`.
fn links(md: &str) -> Vec<String> {
    prose(md)
        .iter()
        .flat_map(|l| l.split("](").skip(1))
        .filter_map(|rest| rest.split_once(')').map(|(t, _)| t.to_string()))
        .filter(|t| !t.contains("://") && !t.starts_with("mailto:") && !t.contains(' '))
        .collect()
}

#[test]
fn every_link_between_the_docs_resolves() {
    // A moved section or a renamed heading breaks links silently on
    // GitHub; the README and the measurement record link to each other by
    // anchor, so each is checked here.
    let docs = [
        "README.md",
        "benches/README.md",
        "models/README.md",
        "charts/README.md",
        "notebooks/README.md",
        "tests/fixtures/forecast/README.md",
        "tests/fixtures/eval/README.md",
    ];
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut broken = Vec::new();
    let mut checked = 0;
    for doc in docs {
        let text = read(doc);
        let dir = std::path::Path::new(doc).parent().unwrap();
        for target in links(&text) {
            checked += 1;
            let (path, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let file = if path.is_empty() {
                root.join(doc)
            } else {
                root.join(dir).join(path)
            };
            if !file.exists() {
                broken.push(format!("{doc}: {target}: no file {}", file.display()));
                continue;
            }
            if fragment.is_empty() || file.extension().is_none_or(|e| e != "md") {
                continue;
            }
            let body = std::fs::read_to_string(&file).unwrap();
            let found = prose(&body)
                .iter()
                .any(|l| l.starts_with('#') && anchor(l.trim_start_matches('#')) == fragment);
            if !found {
                broken.push(format!("{doc}: {target}: no heading with that anchor"));
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} links found: is the parser broken?"
    );
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}
