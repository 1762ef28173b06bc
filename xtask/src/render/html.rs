//! `report.html`: one self-contained page with the run's settings, headline and tables, and for cpu runs the flame
//! graph inline (as a data URL, so its search and zoom scripts still work), for people who would rather look than
//! read.

use std::fmt::Write as _;

/// One section of the report: a heading and preformatted text (a rendered table or a headline).
#[derive(Debug)]
pub struct Section {
    pub heading: String,
    pub text: String,
}

/// The whole page.
pub fn page(title: &str, facts: &[(String, String)], sections: &[Section], flamegraph_svg: Option<&str>) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>\n\
         body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}\n\
         pre {{ font-family: ui-monospace, monospace; font-size: 12px; line-height: 1.25; overflow-x: auto; }}\n\
         table.facts td {{ padding: 0 1em 0 0; }}\n\
         iframe {{ width: 100%; height: 900px; border: 1px solid #ccc; }}\n\
         </style>\n</head>\n<body>\n<h1>{}</h1>\n<table class=\"facts\">\n",
        escape(title),
        escape(title)
    );
    for (key, value) in facts {
        let _ = writeln!(
            html,
            "<tr><td><b>{}</b></td><td>{}</td></tr>",
            escape(key),
            escape(value)
        );
    }
    html.push_str("</table>\n");
    if let Some(svg) = flamegraph_svg {
        let _ = write!(
            html,
            "<h2>Flame graph</h2>\n<p>Click a frame to zoom, Ctrl-F to search. Also in <a \
             href=\"flamegraph.svg\">flamegraph.svg</a>.</p>\n<iframe src=\"data:image/svg+xml;base64,{}\"></iframe>\n",
            base64(svg.as_bytes())
        );
    }
    for section in sections {
        let _ = write!(
            html,
            "<h2>{}</h2>\n<pre>{}</pre>\n",
            escape(&section.heading),
            escape(&section.text)
        );
    }
    html.push_str("</body>\n</html>\n");
    html
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// Standard base64 with padding (RFC 4648).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, output) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), output);
        }
    }

    #[test]
    fn the_page_escapes_and_embeds() {
        let page = page(
            "cpu <run>",
            &[("mix".into(), "seed & more".into())],
            &[Section {
                heading: "Self".into(),
                text: "<core::ptr::drop_in_place<T>>".into(),
            }],
            Some("<svg/>"),
        );
        assert!(page.contains("<title>cpu &lt;run&gt;</title>"));
        assert!(page.contains("seed &amp; more"));
        assert!(page.contains("&lt;core::ptr::drop_in_place&lt;T&gt;&gt;"));
        assert!(page.contains("data:image/svg+xml;base64,PHN2Zy8+"));
        assert!(page.trim_end().ends_with("</html>"));
    }
}
