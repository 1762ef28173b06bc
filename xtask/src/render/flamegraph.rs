//! The flame graph of a cpu run, rendered with inferno from the folded stacks.

use std::io::BufWriter;
use std::path::Path;

use anyhow::Context;

/// Renders `folded` (`stack count` lines) as a searchable SVG flame graph at `out`.
pub fn write(folded: &str, title: &str, subtitle: &str, out: &Path) -> anyhow::Result<()> {
    let mut options = inferno::flamegraph::Options::default();
    options.title = title.to_owned();
    options.subtitle = Some(subtitle.to_owned());
    options.count_name = "samples".to_owned();
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    inferno::flamegraph::from_lines(&mut options, folded.lines(), BufWriter::new(file))
        .with_context(|| format!("rendering the flame graph {}", out.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_a_searchable_svg() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("flame.svg");
        let folded = "main;demo_app::handler;drift_sdk::capture 3\nmain;demo_app::handler 1\n";
        super::write(folded, "cpu: seed mix", "4 connections, 10 s", &out).unwrap();
        let svg = std::fs::read_to_string(&out).unwrap();
        assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("drift_sdk::capture") && svg.contains("cpu: seed mix"));
        assert!(svg.contains("function search("), "the search script is inline");
    }
}
