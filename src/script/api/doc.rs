//! A host function's documentation, written once beside its registration and kept in Rhai's
//! function metadata: the REPL's `:help` and completion and docs/REFERENCE.md read it back
//! (`script::reference`), so no second list of the API can fall behind.
//!
//! ```ignore
//! doc("t.get()", "Waits for the task and returns its result, or throws its error.")
//!     .func("get")
//!     .register_into_engine(engine, |t: TaskHandle| ...);
//! ```

use rhai::FuncRegistration;

/// How a script calls a host function, and what it does in a sentence or two.
#[derive(Clone, Copy)]
pub struct Doc {
    call: &'static str,
    what: &'static str,
}

/// The documentation of the function registered next: `call` as a script writes it
/// (`shell(name, command)`, `t.name`, `t.timeout = secs`), `what` what it does.
pub fn doc(call: &'static str, what: &'static str) -> Doc {
    Doc { call, what }
}

impl Doc {
    /// The doc-comment Rhai keeps: the call on its first line, then what it does.
    fn comments(self) -> [String; 1] {
        [format!("/// {}\n/// {}", self.call, self.what)]
    }

    /// The registration of the function `name`, with this documentation.
    pub fn func(self, name: &str) -> FuncRegistration {
        FuncRegistration::new(name).with_comments(self.comments())
    }

    /// The registration of property `name`'s getter.
    pub fn get(self, name: &str) -> FuncRegistration {
        FuncRegistration::new_getter(name).with_comments(self.comments())
    }

    /// The registration of property `name`'s setter.
    pub fn set(self, name: &str) -> FuncRegistration {
        FuncRegistration::new_setter(name).with_comments(self.comments())
    }
}
