//! A host function's documentation, written once beside its registration: the REPL's `:help`
//! and completion and docs/REFERENCE.md read it back (`script::reference`), so no second list
//! of the API can fall behind.
//!
//! ```ignore
//! doc("t.get()", "Waits for the task and returns its result, or throws its error.")
//!     .func("get")
//!     .register_into_engine(engine, |t: TaskHandle| ...);
//! ```
//!
//! The docs are kept only while `script::reference` builds an engine to read them
//! (`recording`): a run's engine registers its functions as if they had none, and Rhai's own
//! `metadata` feature, which would keep every function's parameter names in every engine
//! (+2.4M instructions at each start), stays off.

use std::cell::RefCell;

use rhai::{Engine, FuncRegistration, Module, RhaiNativeFunc, Variant};

use crate::script::reference::HostFunction;

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
    /// The registration of the function `name`, with this documentation.
    pub fn func(self, name: &'static str) -> Documented {
        Documented { doc: self, name, registration: FuncRegistration::new(name) }
    }

    /// The registration of property `name`'s getter.
    pub fn get(self, name: &'static str) -> Documented {
        Documented { doc: self, name, registration: FuncRegistration::new_getter(name) }
    }

    /// The registration of property `name`'s setter.
    pub fn set(self, name: &'static str) -> Documented {
        Documented { doc: self, name, registration: FuncRegistration::new_setter(name) }
    }
}

/// A registration with its documentation.
pub struct Documented {
    doc: Doc,
    name: &'static str,
    registration: FuncRegistration,
}

impl Documented {
    /// Registers `func` on `engine` (kept with its doc while recording).
    pub fn register_into_engine<A: 'static, const N: usize, const X: bool, R, const F: bool, FUNC>(
        self,
        engine: &mut Engine,
        func: FUNC,
    ) where
        R: Variant + Clone,
        FUNC: RhaiNativeFunc<A, N, X, R, F> + Send + Sync + 'static,
    {
        record::<A>(engine, self.name, self.doc);
        self.registration.register_into_engine(engine, func);
    }

    /// Sets `func` into `module`, a static module registered as `prefix` (`HandlerResult`).
    pub fn set_into_module<A: 'static, const N: usize, const X: bool, R, const F: bool, FUNC>(
        self,
        module: &mut Module,
        prefix: &str,
        func: FUNC,
    ) where
        R: Variant + Clone,
        FUNC: RhaiNativeFunc<A, N, X, R, F> + Send + Sync + 'static,
    {
        keep(|| HostFunction {
            name: format!("{prefix}::{}", self.name),
            receiver: None,
            call: self.doc.call.to_string(),
            what: self.doc.what.to_string(),
        });
        self.registration.set_into_module(module, func);
    }
}

thread_local! {
    /// The functions registered on this thread while `recording`.
    static RECORDED: RefCell<Option<Vec<HostFunction>>> = const { RefCell::new(None) };
}

/// Runs `build` (which builds an engine) and returns the functions it registered with docs.
pub fn recording(build: impl FnOnce()) -> Vec<HostFunction> {
    RECORDED.with_borrow_mut(|recorded| *recorded = Some(Vec::new()));
    build();
    RECORDED.with_borrow_mut(Option::take).unwrap_or_default()
}

/// Keeps one registration, while recording: called on a value when its call says so
/// (`t.name`, not `shell(...)`), on the type of its first parameter as scripts name it.
fn record<A: 'static>(engine: &Engine, name: &str, doc: Doc) {
    keep(|| {
        let free = doc.call.starts_with(&format!("{name}("));
        let receiver = (!free).then(|| first_parameter_type::<A>(engine));
        HostFunction { name: name.to_string(), receiver, call: doc.call.to_string(), what: doc.what.to_string() }
    });
}

/// Keeps the function `describe` gives, only while recording (a run's engine pays one check).
fn keep(describe: impl FnOnce() -> HostFunction) {
    RECORDED.with_borrow_mut(|recorded| {
        if let Some(functions) = recorded {
            functions.push(describe());
        }
    });
}

/// `(rhai::func::register::Mut<rhaiflow::script::api::tasks::TaskHandle>, i64)` (how Rhai
/// spells a function's parameters) → `Task`, the name the first one's type was registered
/// with, else the last segment of its path.
fn first_parameter_type<A: 'static>(engine: &Engine) -> String {
    let parameters = std::any::type_name::<A>();
    let inside = parameters.strip_prefix('(').and_then(|p| p.strip_suffix(')')).unwrap_or(parameters);
    let first = first_element(inside);
    // A `&mut` parameter is marked `Mut<T>`.
    let bare = match first.split_once('<') {
        Some((wrapper, rest)) if wrapper.ends_with("::Mut") => rest.strip_suffix('>').unwrap_or(rest),
        _ => first,
    };
    let shown = engine.map_type_name(bare);
    let path = shown.split('<').next().unwrap_or(shown);
    path.rsplit("::").next().unwrap_or(path).to_string()
}

/// The text before the first comma outside brackets.
fn first_element(list: &str) -> &str {
    let mut depth = 0i32;
    for (i, c) in list.char_indices() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' => depth -= 1,
            ',' if depth == 0 => return list[..i].trim(),
            _ => {}
        }
    }
    list.trim()
}
