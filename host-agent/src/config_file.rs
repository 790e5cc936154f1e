//! Loading a configuration file: TOML text in, a validated [`Config`] out, or every
//! problem found as a [`Diagnostic`] that points at a file, line and column.
//!
//! The schema and its rules live in `fulcrum_model::config`, shared with the firmware,
//! which validates again what it receives. This module only adds what a file on the host
//! needs: the TOML syntax, and the mapping of each problem back to where the operator
//! wrote it. Problems are found in three passes, each run only if the one before passed:
//!
//! 1. syntax: every TOML syntax error (the parser recovers and goes on);
//! 2. types: the first value of the wrong type, unknown key or missing key (serde stops
//!    at the first);
//! 3. rules: every problem [`Config::validate`] finds, each located by its field path
//!    (`service[1].backend[0].port`) in the document, or at the enclosing table when
//!    the field is left out and its default is what is wrong.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use fulcrum_model::config::Config;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One problem in a configuration file, printed like a compiler diagnostic:
/// `examples/bad.toml:12:9: service[1].backend[0].weight: weight 1200 is above the maximum 1000`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, as it was named to [`load`] or [`parse`].
    pub file: String,
    /// Line of the problem, from 1.
    pub line: usize,
    /// Column of the problem in characters, from 1.
    pub column: usize,
    /// Byte range of the problem in the file.
    pub span: Range<usize>,
    /// The TOML path of the field (`service[1].backend[0].weight`), when the problem
    /// belongs to one (syntax errors do not).
    pub path: Option<String>,
    /// What is wrong (and, for rule violations, what to do).
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if let Some(path) = &self.path {
            write!(f, "{path}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// A configuration file that is not a valid configuration.
///
/// Diagnostics of one pass are in the order of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The problems of the first pass that found any, in the order of the file.
    pub diagnostics: Vec<Diagnostic>,
    /// Rule violations found beyond the ones the validator keeps
    /// (`fulcrum_model::config::MAX_VALIDATION_ERRORS`).
    pub omitted: usize,
}

impl fmt::Display for Invalid {
    /// One diagnostic per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{diagnostic}")?;
        }
        if self.omitted > 0 {
            write!(f, "\n... and {} more problems", self.omitted)?;
        }
        Ok(())
    }
}

impl std::error::Error for Invalid {}

/// Why [`load`] gave no configuration.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("{}: cannot read the file", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file was read but is not a valid configuration.
    #[error("{0}")]
    Invalid(Invalid),
}

/// Reads, parses and validates the configuration file at `path`. Diagnostics name the
/// file as `path` is written.
pub fn load(path: &Path) -> Result<Config, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&path.display().to_string(), &text).map_err(LoadError::Invalid)
}

/// Parses and validates configuration `text`; `file` is the name diagnostics give.
pub fn parse(file: &str, text: &str) -> Result<Config, Invalid> {
    let locate = |span: Range<usize>, path: Option<String>, message: String| {
        let (line, column) = line_and_column(text, span.start);
        Diagnostic {
            file: file.to_owned(),
            line,
            column,
            span,
            path,
            message,
        }
    };

    let (document, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        let diagnostics = syntax_errors
            .iter()
            .map(|error| {
                let span = error.span().unwrap_or(0..0);
                locate(span, None, error.message().trim_end().to_owned())
            })
            .collect();
        return Err(Invalid {
            diagnostics,
            omitted: 0,
        });
    }

    let config: Config = match toml::from_str(text) {
        Ok(config) => config,
        Err(error) => {
            let span = error.span().unwrap_or(0..0);
            let path = path_at(&document, span.start);
            let diagnostic = locate(span, path, plain_message(error.message()));
            return Err(Invalid {
                diagnostics: vec![diagnostic],
                omitted: 0,
            });
        }
    };

    match config.validate() {
        Ok(()) => Ok(config),
        Err(errors) => {
            let mut diagnostics: Vec<Diagnostic> = errors
                .iter()
                .map(|error| {
                    let span = span_of_path(&document, &error.path);
                    locate(
                        span,
                        Some(error.path.to_string()),
                        error.message.to_string(),
                    )
                })
                .collect();
            // The validator reports rule by rule; the operator reads top to bottom.
            diagnostics.sort_by_key(|diagnostic| diagnostic.span.start);
            Err(Invalid {
                diagnostics,
                omitted: errors.omitted(),
            })
        }
    }
}

/// serde names integer types (`expected u16`); an operator wants the range.
fn plain_message(message: &str) -> String {
    let mut message = message.trim_end().to_owned();
    for (rust, range) in [
        ("expected u8", "expected an integer from 0 to 255"),
        ("expected u16", "expected an integer from 0 to 65535"),
        ("expected u32", "expected an integer from 0 to 4294967295"),
    ] {
        if let Some(head) = message.strip_suffix(rust) {
            message = format!("{head}{range}");
        }
    }
    message
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// One step of a field path: a key, and an index if the key holds an array.
struct Step<'p> {
    key: &'p str,
    index: Option<usize>,
}

/// Splits `service[1].backend[0].port` into its steps; `None` if it is not such a path.
fn steps(path: &str) -> Option<Vec<Step<'_>>> {
    path.split('.')
        .map(|part| match part.split_once('[') {
            None => Some(Step {
                key: part,
                index: None,
            }),
            Some((key, rest)) => {
                let index = rest.strip_suffix(']')?.parse().ok()?;
                Some(Step {
                    key,
                    index: Some(index),
                })
            }
        })
        .collect()
}

/// Where the field at `path` is written: its value if present, else the nearest
/// enclosing table or array element that is (its header for `[table]` and
/// `[[array]]` tables), else the start of the file.
pub fn span_of_path(document: &Spanned<DeTable<'_>>, path: &str) -> Range<usize> {
    let mut span = 0..0;
    let Some(steps) = steps(path) else {
        return span;
    };
    let mut table = document.get_ref();
    for (i, step) in steps.iter().enumerate() {
        let Some(value) = lookup(table, step.key) else {
            break;
        };
        span = value.span();
        let value = match step.index {
            None => value,
            Some(index) => match value.get_ref() {
                DeValue::Array(array) => match array.get(index) {
                    Some(element) => element,
                    None => break,
                },
                _ => break,
            },
        };
        span = value.span();
        match value.get_ref() {
            DeValue::Table(inner) => table = inner,
            _ if i + 1 < steps.len() => break,
            _ => {}
        }
    }
    span
}

fn lookup<'d, 'i>(table: &'d DeTable<'i>, key: &str) -> Option<&'d Spanned<DeValue<'i>>> {
    table
        .iter()
        .find(|(k, _)| k.get_ref() == key)
        .map(|(_, v)| v)
}

/// The path of the deepest key or value whose span holds byte `offset` (so a serde
/// error, which knows only its span, can name its field too).
pub fn path_at(document: &Spanned<DeTable<'_>>, offset: usize) -> Option<String> {
    fn search(table: &DeTable<'_>, offset: usize, prefix: &str) -> Option<String> {
        for (key, value) in table.iter() {
            let path = if prefix.is_empty() {
                key.get_ref().to_string()
            } else {
                format!("{prefix}.{}", key.get_ref())
            };
            if let Some(found) = search_value(value, offset, &path) {
                return Some(found);
            }
            if key.span().contains(&offset) {
                return Some(path);
            }
        }
        None
    }
    fn search_value(value: &Spanned<DeValue<'_>>, offset: usize, path: &str) -> Option<String> {
        let deeper = match value.get_ref() {
            DeValue::Table(table) => search(table, offset, path),
            DeValue::Array(array) => array.iter().enumerate().find_map(|(index, element)| {
                search_value(element, offset, &format!("{path}[{index}]"))
            }),
            _ => None,
        };
        deeper.or_else(|| value.span().contains(&offset).then(|| path.to_owned()))
    }
    search(document.get_ref(), offset, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
[appliance]
name = \"edge-1\"
flow_table.sets = 1000

[[service]]
name = \"web\"
backend = [ { name = \"a\", weight = 5 } ]

[[service]]
name = \"dns\"

[[service.backend]]
name = \"b\"
";

    fn document() -> Spanned<DeTable<'static>> {
        DeTable::parse(TEXT).unwrap()
    }

    fn text_at(span: Range<usize>) -> &'static str {
        &TEXT[span]
    }

    #[test]
    fn present_fields_point_at_their_value() {
        let doc = document();
        assert_eq!(text_at(span_of_path(&doc, "appliance.name")), "\"edge-1\"");
        assert_eq!(
            text_at(span_of_path(&doc, "appliance.flow_table.sets")),
            "1000"
        );
        assert_eq!(
            text_at(span_of_path(&doc, "service[0].backend[0].weight")),
            "5"
        );
        assert_eq!(
            text_at(span_of_path(&doc, "service[1].backend[0].name")),
            "\"b\""
        );
    }

    #[test]
    fn absent_fields_point_at_their_table() {
        let doc = document();
        assert_eq!(
            text_at(span_of_path(&doc, "appliance.snat_pool")),
            "[appliance]"
        );
        assert_eq!(
            text_at(span_of_path(&doc, "appliance.flow_table.ways")),
            "flow_table"
        );
        assert_eq!(
            text_at(span_of_path(&doc, "service[1].health.rise")),
            "[[service]]"
        );
        assert_eq!(
            text_at(span_of_path(&doc, "service[1].backend[0].weight")),
            "[[service.backend]]"
        );
        assert_eq!(
            text_at(span_of_path(&doc, "service[0].backend[0].port")),
            "{ name = \"a\", weight = 5 }"
        );
        assert_eq!(span_of_path(&doc, "nothing.here"), 0..0);
        assert_eq!(
            span_of_path(&doc, "service[7].name"),
            span_of_path(&doc, "service")
        );
    }

    #[test]
    fn offsets_name_their_field() {
        let doc = document();
        let offset = TEXT.find("5 }").unwrap();
        assert_eq!(
            path_at(&doc, offset).as_deref(),
            Some("service[0].backend[0].weight")
        );
        let offset = TEXT.find("sets").unwrap();
        assert_eq!(
            path_at(&doc, offset).as_deref(),
            Some("appliance.flow_table.sets")
        );
    }

    /// The appliance holds 256 backends in all (one flat table): a file with more is
    /// refused where the list that does not fit is, with file, line and path.
    #[test]
    fn too_many_backends_in_all_are_refused_with_their_place() {
        let mut text = String::from(
            "[appliance]\nname = \"big\"\nmac = \"02:00:00:00:00:01\"\naddress = \"10.0.0.2\"\nmaglev_ring_size = 67\n",
        );
        for s in 0..9 {
            text += &format!(
                "\n[[service]]\nname = \"svc-{s}\"\nvip = \"10.0.0.1\"\nprotocol = \"tcp\"\nport = {}\n",
                1000 + s
            );
            for b in 0..32 {
                text += &format!(
                    "[[service.backend]]\nname = \"b-{b}\"\naddress = \"10.9.{s}.{}\"\n",
                    b + 1
                );
            }
        }
        let invalid = parse("big.toml", &text).unwrap_err();
        assert_eq!(invalid.diagnostics.len(), 1);
        let d = &invalid.diagnostics[0];
        println!("{d}");
        assert!(
            d.message.contains(
                "too many backends: the appliance holds at most 256 in all services together"
            ),
            "{d}"
        );
        assert_eq!(d.file, "big.toml");
        assert!(
            d.path
                .as_deref()
                .is_some_and(|p| p.starts_with("service[8]")),
            "{d}"
        );
        let ninth = text.find("name = \"svc-8\"").unwrap();
        assert!(d.span.start >= ninth - "[[service]]\n".len(), "{d}");
        // Eight services of 32 fill the table exactly and are fine.
        let eight = &text[..text.find("\n[[service]]\nname = \"svc-8\"").unwrap()];
        let config = parse("big.toml", eight).unwrap();
        assert_eq!(config.backend_count(), 256);
    }

    #[test]
    fn lines_and_columns_count_from_one_in_characters() {
        assert_eq!(line_and_column("ab\ncdé\nf", 0), (1, 1));
        assert_eq!(line_and_column("ab\ncdé\nf", 3), (2, 1));
        assert_eq!(line_and_column("ab\ncdé\nf", 8), (3, 1));
        assert_eq!(line_and_column("ab\ncdé\nf", 7), (2, 4));
    }
}
