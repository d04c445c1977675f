//! The run-time parameters the server reported, kept compactly: an idle connection in a pooler
//! may hold a dozen of them for hours, so they live in one string, not one allocation each.

use crate::message::backend::ParameterStatus;

/// Parameter names and values as `name\0value\0name\0value\0...` in one allocation. Values are
/// kept as text for the getter (invalid UTF-8 is replaced); events carry the exact bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Params {
    text: Box<str>,
}

impl Params {
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut parts = self.text.split('\0');
        std::iter::from_fn(move || {
            let name = parts.next().filter(|n| !n.is_empty())?;
            Some((name, parts.next().unwrap_or_default()))
        })
    }

    /// The value of `name`, if reported.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.pairs().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// Records a reported value, replacing an older one.
    pub(crate) fn set(&mut self, p: &ParameterStatus) {
        // NUL cannot occur: ParameterStatus strings end at their first NUL.
        let name = String::from_utf8_lossy(p.name());
        let value = String::from_utf8_lossy(p.value());
        let mut text = String::with_capacity(self.text.len() + name.len() + value.len() + 2);
        let mut replaced = false;
        for (k, v) in self.pairs() {
            text.push_str(k);
            text.push('\0');
            if k == name {
                text.push_str(&value);
                replaced = true;
            } else {
                text.push_str(v);
            }
            text.push('\0');
        }
        if !replaced {
            text.push_str(&name);
            text.push('\0');
            text.push_str(&value);
            text.push('\0');
        }
        self.text = text.into_boxed_str();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_replace() {
        let mut p = Params::default();
        assert_eq!(p.get("a"), None);
        p.set(&ParameterStatus::new("a", "1").unwrap());
        p.set(&ParameterStatus::new("b", "").unwrap());
        p.set(&ParameterStatus::new("a", "2").unwrap());
        assert_eq!(p.get("a"), Some("2"));
        assert_eq!(p.get("b"), Some(""));
        assert_eq!(p.get("c"), None);
        assert_eq!(&*p.text, "a\x002\0b\0\0");
    }
}
