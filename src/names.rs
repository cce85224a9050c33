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

/// Compares versions as semver does: the numbers part by part (1.10.0 is newer than 1.9.2),
/// and a pre-release (`1.0.0-rc1`) older than its release; build metadata (`+...`) is ignored.
pub fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn split(v: &str) -> (Vec<u64>, Option<&str>) {
        let v = v.split('+').next().unwrap_or(v);
        let (core, pre) = match v.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (v, None),
        };
        (core.split('.').map(|p| p.parse().unwrap_or(0)).collect(), pre)
    }
    fn pre_order(a: &str, b: &str) -> std::cmp::Ordering {
        let (a, b): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
        for (x, y) in a.iter().zip(&b) {
            let order = match (x.parse::<u64>(), y.parse::<u64>()) {
                (Ok(x), Ok(y)) => x.cmp(&y),
                (Ok(_), Err(_)) => std::cmp::Ordering::Less,
                (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
                (Err(_), Err(_)) => x.cmp(y),
            };
            if order.is_ne() {
                return order;
            }
        }
        a.len().cmp(&b.len())
    }
    let ((mut core_a, pre_a), (mut core_b, pre_b)) = (split(a), split(b));
    let len = core_a.len().max(core_b.len());
    core_a.resize(len, 0);
    core_b.resize(len, 0);
    core_a.cmp(&core_b).then_with(|| match (pre_a, pre_b) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (Some(_), None) => std::cmp::Ordering::Less,
        (Some(x), Some(y)) => pre_order(x, y),
    })
}

/// Where an operation or a workflow's function lives, written `plugin.module.function`:
/// `demo.flows.greet` is `fn greet` in `flows.rhai` of bundle `demo`; `demo.aws.ec2.boot` is
/// `fn boot` in `aws/ec2.rhai`. Parsed once, where the YAML is read; the rest use the parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperationPath {
    pub plugin: String,
    /// The module's path inside the bundle, without `.rhai` (`flows`, `aws/ec2`).
    pub module: String,
    pub function: String,
}

impl OperationPath {
    /// `None` unless `text` is three or more identifiers joined by dots.
    pub fn parse(text: &str) -> Option<OperationPath> {
        let parts: Vec<&str> = text.split('.').collect();
        let [plugin, module @ .., function] = parts.as_slice() else { return None };
        if module.is_empty() || !parts.iter().all(|p| is_identifier(p)) {
            return None;
        }
        Some(OperationPath { plugin: plugin.to_string(), module: module.join("/"), function: function.to_string() })
    }
}

impl std::fmt::Display for OperationPath {
    /// As it is written: `demo.aws.ec2.boot`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.plugin, self.module.replace('/', "."), self.function)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operation_path_has_a_module_between_plugin_and_function() {
        let path = OperationPath::parse("demo.aws.ec2.boot").unwrap();
        assert_eq!((path.plugin.as_str(), path.module.as_str(), path.function.as_str()), ("demo", "aws/ec2", "boot"));
        assert_eq!(path.to_string(), "demo.aws.ec2.boot");
        for bad in ["demo.flows", "demo..f", "demo.flows.9x", "", "a.b-c.d"] {
            assert_eq!(OperationPath::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn versions_compare_as_numbers() {
        use std::cmp::Ordering::*;
        assert_eq!(version_order("1.10.0", "1.9.2"), Greater);
        assert_eq!(version_order("1.0.0", "1.0.0"), Equal);
        assert_eq!(version_order("0.9", "1.0"), Less);
        assert_eq!(version_order("1.10.0-rc1", "1.10.0"), Less);
        assert_eq!(version_order("1.10.0-rc.2", "1.10.0-rc.10"), Less);
        assert_eq!(version_order("1.0", "1.0.0+build5"), Equal);
    }
}
