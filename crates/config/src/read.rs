//! Reading typed values out of a parsed TOML table while keeping their positions.
//!
//! The description is parsed into `toml::de::DeTable`, which keeps the byte span of every key
//! and value. A [`Fields`] view of one table reports unknown keys when it is made, and each
//! typed accessor reports a wrong type or an out-of-range number at the value's position.
//! Accessors return `Ok(None)` for an absent key, `Err(Reported)` for a value that is present
//! but unusable.

use std::ops::Range;

use toml::de::{DeArray, DeString, DeTable, DeValue};
use toml::Spanned;

use crate::problem::{Report, Reported};
use crate::rules;

/// A value together with the span of its text in the description.
#[derive(Debug, Clone)]
pub(crate) struct Located<T> {
    pub(crate) value: T,
    pub(crate) span: Range<usize>,
}

/// The keys of one table, checked against the keys it accepts.
pub(crate) struct Fields<'a, 'i> {
    entries: Vec<(&'a str, &'a Spanned<DeValue<'i>>)>,
    span: Range<usize>,
    prefix: String,
}

impl<'a, 'i> Fields<'a, 'i> {
    /// Views `table` (whose header or inline text is at `span`) as keys of `prefix`, reporting
    /// every key not in `accepted`.
    pub(crate) fn new(
        report: &mut Report<'_>,
        table: &'a DeTable<'i>,
        span: Range<usize>,
        prefix: String,
        accepted: &[&str],
    ) -> Self {
        Self::view(report, table, span, prefix, accepted, None)
    }

    /// Like [`Fields::new`], naming what the table is in unknown-key messages: with `subject`
    /// "a block device", `unknown key for a block device; accepted keys are …`.
    pub(crate) fn of(
        report: &mut Report<'_>,
        table: &'a DeTable<'i>,
        span: Range<usize>,
        prefix: String,
        accepted: &[&str],
        subject: &str,
    ) -> Self {
        Self::view(report, table, span, prefix, accepted, Some(subject))
    }

    fn view(
        report: &mut Report<'_>,
        table: &'a DeTable<'i>,
        span: Range<usize>,
        prefix: String,
        accepted: &[&str],
        subject: Option<&str>,
    ) -> Self {
        let mut entries = Vec::with_capacity(table.len());
        for (key, value) in table.iter() {
            let name: &str = key.get_ref();
            if accepted.contains(&name) {
                entries.push((name, value));
            } else {
                let path = join_key(&prefix, name);
                report_unknown_key(report, key, &path, accepted, subject);
            }
        }
        Fields {
            entries,
            span,
            prefix,
        }
    }

    /// Span of the table's header (or of the inline table).
    pub(crate) fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    /// Dotted path of the table itself.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Dotted path of key `name` of this table.
    pub(crate) fn key(&self, name: &str) -> String {
        join_key(&self.prefix, name)
    }

    fn get(&self, name: &str) -> Option<&'a Spanned<DeValue<'i>>> {
        self.entries
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| *value)
    }

    /// The raw value of key `name`, if the table has it (for values of more than one type).
    pub(crate) fn value(&self, name: &str) -> Option<&'a Spanned<DeValue<'i>>> {
        self.get(name)
    }

    /// Span of the value of key `name`, if the table has it.
    pub(crate) fn span_of(&self, name: &str) -> Option<Range<usize>> {
        self.get(name).map(|value| value.span())
    }

    /// Reports that required key `name` is absent, at the table's header.
    pub(crate) fn missing(&self, report: &mut Report<'_>, name: &str) -> Reported {
        report.at(self.span(), self.key(name), "required key is missing")
    }

    /// `value` if present, otherwise reports the key as missing.
    pub(crate) fn required<T>(
        &self,
        report: &mut Report<'_>,
        name: &str,
        value: Result<Option<T>, Reported>,
    ) -> Result<T, Reported> {
        value?.ok_or_else(|| self.missing(report, name))
    }

    /// A string value.
    pub(crate) fn string(
        &self,
        report: &mut Report<'_>,
        name: &str,
    ) -> Result<Option<Located<String>>, Reported> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        match value.get_ref() {
            DeValue::String(s) => Ok(Some(Located {
                value: s.to_string(),
                span: value.span(),
            })),
            other => Err(wrong_type(
                report,
                value.span(),
                self.key(name),
                "a string",
                other,
            )),
        }
    }

    /// A boolean value.
    pub(crate) fn boolean(
        &self,
        report: &mut Report<'_>,
        name: &str,
    ) -> Result<Option<Located<bool>>, Reported> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        match value.get_ref() {
            DeValue::Boolean(b) => Ok(Some(Located {
                value: *b,
                span: value.span(),
            })),
            other => Err(wrong_type(
                report,
                value.span(),
                self.key(name),
                "a boolean",
                other,
            )),
        }
    }

    /// An integer value in `range`.
    pub(crate) fn integer<T>(
        &self,
        report: &mut Report<'_>,
        name: &str,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<Option<Located<T>>, Reported>
    where
        T: Copy + Into<i128> + TryFrom<i128> + std::fmt::Display,
    {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        integer_in(report, value, &self.key(name), range).map(Some)
    }

    /// A string value that must be one of `accepted` (spelling, meaning).
    pub(crate) fn choice<T: Copy>(
        &self,
        report: &mut Report<'_>,
        name: &str,
        accepted: &[(&str, T)],
    ) -> Result<Option<Located<T>>, Reported> {
        let Some(text) = self.string(report, name)? else {
            return Ok(None);
        };
        match accepted
            .iter()
            .find(|(spelling, _)| *spelling == text.value)
        {
            Some((_, value)) => Ok(Some(Located {
                value: *value,
                span: text.span,
            })),
            None => {
                let spellings: Vec<String> = accepted
                    .iter()
                    .map(|(spelling, _)| format!("{spelling:?}"))
                    .collect();
                Err(report.at(
                    text.span,
                    self.key(name),
                    format!(
                        "invalid value {:?}; accepted values are {}",
                        text.value,
                        spellings.join(", ")
                    ),
                ))
            }
        }
    }

    /// An array value, with its span.
    pub(crate) fn array(
        &self,
        report: &mut Report<'_>,
        name: &str,
    ) -> Result<Option<Located<&'a DeArray<'i>>>, Reported> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        match value.get_ref() {
            DeValue::Array(array) => Ok(Some(Located {
                value: array,
                span: value.span(),
            })),
            other => Err(wrong_type(
                report,
                value.span(),
                self.key(name),
                "an array",
                other,
            )),
        }
    }

    /// A table value, with its span.
    pub(crate) fn table(
        &self,
        report: &mut Report<'_>,
        name: &str,
    ) -> Result<Option<Located<&'a DeTable<'i>>>, Reported> {
        let Some(value) = self.get(name) else {
            return Ok(None);
        };
        match value.get_ref() {
            DeValue::Table(table) => Ok(Some(Located {
                value: table,
                span: value.span(),
            })),
            other => Err(wrong_type(
                report,
                value.span(),
                self.key(name),
                "a table",
                other,
            )),
        }
    }
}

/// `value`, which must be an integer in `range`.
pub(crate) fn integer_in<T>(
    report: &mut Report<'_>,
    value: &Spanned<DeValue<'_>>,
    key: &str,
    range: std::ops::RangeInclusive<T>,
) -> Result<Located<T>, Reported>
where
    T: Copy + Into<i128> + TryFrom<i128> + std::fmt::Display,
{
    let span = value.span();
    let DeValue::Integer(integer) = value.get_ref() else {
        return Err(wrong_type(
            report,
            span,
            key.to_owned(),
            "an integer",
            value.get_ref(),
        ));
    };
    let (low, high) = (*range.start(), *range.end());
    let number = i128::from_str_radix(integer.as_str(), integer.radix()).ok();
    match number
        .filter(|n| (low.into()..=high.into()).contains(n))
        .map(T::try_from)
    {
        Some(Ok(number)) => Ok(Located {
            value: number,
            span,
        }),
        _ => Err(report.at(
            span,
            key,
            format!("{integer} is out of range; accepted values are {low} to {high}"),
        )),
    }
}

/// Reports that `found` is not of the `expected` kind ("an integer", "a string", ...).
pub(crate) fn wrong_type(
    report: &mut Report<'_>,
    span: Range<usize>,
    key: String,
    expected: &str,
    found: &DeValue<'_>,
) -> Reported {
    report.at(
        span,
        key,
        format!("expected {expected}, found {}", describe(found)),
    )
}

/// The kind of a TOML value, with its article, for messages.
fn describe(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

fn report_unknown_key(
    report: &mut Report<'_>,
    key: &Spanned<DeString<'_>>,
    path: &str,
    accepted: &[&str],
    subject: Option<&str>,
) {
    let unknown = match subject {
        Some(subject) => format!("unknown key for {subject}"),
        None => "unknown key".to_owned(),
    };
    let message = match rules::closest(key.get_ref(), accepted) {
        Some(suggestion) => format!("{unknown} (did you mean {suggestion:?}?)"),
        None => format!("{unknown}; accepted keys are {}", accepted.join(", ")),
    };
    report.at(key.span(), path, message);
}

/// `prefix.name`, quoting `name` if it is not a bare TOML key.
pub(crate) fn join_key(prefix: &str, name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let name = if bare {
        name.to_owned()
    } else {
        format!("{name:?}")
    };
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_key_appends_bare_key_with_dot() {
        let key = join_key("partition[0]", "vcpus");

        assert_eq!(key, "partition[0].vcpus");
    }

    #[test]
    fn join_key_quotes_key_with_spaces() {
        let key = join_key("system", "my key");

        assert_eq!(key, "system.\"my key\"");
    }

    #[test]
    fn join_key_without_prefix_is_the_key() {
        let key = join_key("", "system");

        assert_eq!(key, "system");
    }
}
