//! What the fuzz targets (`fuzz/`) drive: the readers of untrusted input, reached without a
//! command line. Not an API for users; its shape follows the targets.

pub use crate::bundle::archive::unpack;
pub use crate::bundle::manifest::defaults;
pub use crate::bundle::Manifest;
pub use crate::deploy::{Blueprint, Deployment};
pub use crate::memory::in_use as memory_in_use;
pub use crate::yaml::{parse as parse_yaml, parse_json};
