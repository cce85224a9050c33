//! The names users give things (bundles, workflows, parameters, nodes, deployments) and
//! versions: what makes one valid, in one place, so every file that reads a name agrees.

/// Names that are also Rhai identifiers and path segments: no dots, slashes or `..`.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A version as bundles write it: `1.0.2`, `2.0.0-rc1`.
pub fn is_version(s: &str) -> bool {
    !s.is_empty()
        && s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '+')
}
