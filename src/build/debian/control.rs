//! Deb822 stanzas, the format of `Release`, `Packages` and apt's `.sources` files: paragraphs of `Field: value` lines separated by blank lines, continuation lines starting with a space or tab.
//!
//! Field names are case-insensitive (Debian Policy §5.1), so a stanza keeps
//! them as written and looks them up ignoring case. Comment lines (`#`)
//! are allowed in `.sources` files and skipped here everywhere, which is
//! harmless for archive files that never hold them at the start of a line.

/// One paragraph: its fields in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stanza {
    fields: Vec<(String, String)>,
}

impl Stanza {
    /// The value of `name`, any case; a multi-line value keeps its
    /// continuation lines joined with `\n`, each without its leading space.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Every stanza of `text`, in order. A line that is neither a field nor a
/// continuation is an error naming its line number.
pub fn parse(text: &str) -> anyhow::Result<Vec<Stanza>> {
    let mut stanzas = Vec::new();
    let mut current = Stanza::default();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            if !current.fields.is_empty() {
                stanzas.push(std::mem::take(&mut current));
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let Some((_, value)) = current.fields.last_mut() else {
                anyhow::bail!("line {}: a continuation line before any field", number + 1);
            };
            if !value.is_empty() {
                value.push('\n');
            }
            value.push_str(line.trim());
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            anyhow::bail!("line {}: expected `Field: value`, found `{line}`", number + 1);
        };
        current.fields.push((name.trim().to_string(), value.trim().to_string()));
    }
    if !current.fields.is_empty() {
        stanzas.push(current);
    }
    Ok(stanzas)
}

#[cfg(test)]
mod tests {
    #[test]
    fn stanzas_fields_and_continuations() {
        let text = "Package: a\nDescription: short\n long\n .\n more\n\n\n# note\npackage: b\n";
        let stanzas = super::parse(text).unwrap();
        assert_eq!(stanzas.len(), 2);
        assert_eq!(stanzas[0].get("package"), Some("a"));
        assert_eq!(stanzas[0].get("Description"), Some("short\nlong\n.\nmore"));
        assert_eq!(stanzas[1].get("Package"), Some("b"));
        assert!(super::parse("no colon here\n").is_err());
    }
}
