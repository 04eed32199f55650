//! Build logs carry ANSI colour codes (Podman, compilers, test runners); the run page
//! shows them as colours. Only SGR colours and bold are rendered; every other escape
//! sequence is dropped and all text is HTML-escaped. Written by hand because the
//! crates that convert ANSI to HTML emit inline styles, which the portal's content
//! security policy forbids; this emits classes.

/// Escapes text for HTML.
fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\t' => {}
            c => out.push(c),
        }
    }
}

/// One log line as HTML: spans with classes `fg-N` (0-7, 8-15 bright) and `b` (bold).
pub fn to_html(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 16);
    let mut fg: Option<u8> = None;
    let mut bold = false;
    let mut open = false;
    let mut rest = line;
    loop {
        let Some(start) = rest.find('\u{1b}') else {
            push_escaped(&mut out, rest);
            break;
        };
        push_escaped(&mut out, &rest[..start]);
        let after = &rest[start + 1..];
        // CSI: ESC [ params final-byte; anything else: drop ESC and the next char.
        let Some(csi) = after.strip_prefix('[') else {
            rest = after.get(after.chars().next().map_or(0, char::len_utf8)..).unwrap_or("");
            continue;
        };
        let end = csi.find(|c: char| ('@'..='~').contains(&c)).unwrap_or(csi.len());
        let (params, final_byte) = (&csi[..end], csi[end..].chars().next());
        rest = csi.get(end + final_byte.map_or(0, char::len_utf8)..).unwrap_or("");
        if final_byte != Some('m') {
            continue;
        }
        for code in params.split(';').map(|p| p.parse::<u16>().unwrap_or(0)) {
            match code {
                0 => {
                    fg = None;
                    bold = false;
                }
                1 => bold = true,
                22 => bold = false,
                30..=37 => fg = Some((code - 30) as u8),
                39 => fg = None,
                90..=97 => fg = Some((code - 90 + 8) as u8),
                _ => {}
            }
        }
        if open {
            out.push_str("</span>");
            open = false;
        }
        let mut classes = Vec::new();
        if let Some(n) = fg {
            classes.push(format!("fg-{n}"));
        }
        if bold {
            classes.push("b".to_owned());
        }
        if !classes.is_empty() {
            out.push_str(&format!("<span class=\"{}\">", classes.join(" ")));
            open = true;
        }
    }
    if open {
        out.push_str("</span>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_become_classes_and_text_is_escaped() {
        assert_eq!(to_html("\u{1b}[31merror\u{1b}[0m: <b>"), "<span class=\"fg-1\">error</span>: &lt;b&gt;");
        assert_eq!(to_html("\u{1b}[1;92mok\u{1b}[m"), "<span class=\"fg-10 b\">ok</span>");
    }

    #[test]
    fn other_escapes_are_dropped_and_a_cut_sequence_is_harmless() {
        assert_eq!(to_html("a\u{1b}[2Kb\u{1b}]x"), "abx");
        assert_eq!(to_html("tail \u{1b}[3"), "tail ");
        assert_eq!(to_html("\u{1b}[32munclosed"), "<span class=\"fg-2\">unclosed</span>");
    }
}
