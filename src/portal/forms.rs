//! Form plumbing shared by the portal's pages: messages beside fields, and the size limit of
//! posted forms.

/// Largest urlencoded form body the portal reads (a licence application with its lines is a
/// few kilobytes); larger is refused before it is parsed.
pub const FORM_LIMIT: usize = 256 * 1024;

/// Messages to show beside form fields, by field name, in the order found.
#[derive(Debug, Default, Clone)]
pub struct FieldErrors {
    items: Vec<(String, String)>,
}

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `message` for `field` (several per field are kept, in order).
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.items.push((field.into(), message.into()));
    }

    /// The messages for `field`, joined; empty when there are none.
    pub fn of(&self, field: &str) -> String {
        self.items
            .iter()
            .filter(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub fn has(&self, field: &str) -> bool {
        self.items.iter().any(|(f, _)| f == field)
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Every (field, message), for the summary at the top of the form.
    pub fn all(&self) -> &[(String, String)] {
        &self.items
    }
}

/// The form configuration the portal registers: its size limit, and a malformed form answered
/// as a portal error rather than actix's plain text.
pub fn config() -> actix_web::web::FormConfig {
    actix_web::web::FormConfig::default()
        .limit(FORM_LIMIT)
        .error_handler(|e, _| super::PortalError::BadRequest(e.to_string()).into())
}
