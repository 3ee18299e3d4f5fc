//! The README opens with the two commands, and CI runs exactly the second.

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
