//! The codes of diagnostics: each names one kind of failure, and code that must tell kinds
//! apart branches on the kind, never on the text.

use std::fmt;

/// What kind of failure a diagnostic reports; shown as `rhaiflow::<name>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    BadArchive,
    BadArgument,
    BadOption,
    Blueprint,
    Bug,
    Builtin,
    BundleNew,
    BundleRegistry,
    CallDepth,
    Cancelled,
    Compile,
    CompileBudget,
    DeploymentBusy,
    Deployments,
    Error,
    EventsJson,
    FlowFile,
    InvalidGraph,
    Manifest,
    MemoryLimit,
    Module,
    NoDeployment,
    NoFunction,
    NoScript,
    NoSuchTask,
    NoTarget,
    NoWorkflow,
    NotABundle,
    OperationsLimit,
    Param,
    ParamTooDeep,
    Parameters,
    ParamsFile,
    ResultTooDeep,
    Resume,
    Runtime,
    ScriptError,
    ScriptTooLarge,
    SizeLimit,
    Store,
    TaskFailed,
    TasksLimit,
    Tokens,
    Thrown,
    UndeclaredParameter,
    UnknownFunction,
    UnknownVariable,
    UnknownWorkflow,
}

impl Code {
    /// The code as a person reads it: `rhaiflow::store`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BadArchive => "rhaiflow::bad_archive",
            Code::BadArgument => "rhaiflow::bad_argument",
            Code::BadOption => "rhaiflow::bad_option",
            Code::Blueprint => "rhaiflow::blueprint",
            Code::Bug => "rhaiflow::bug",
            Code::Builtin => "rhaiflow::builtin",
            Code::BundleNew => "rhaiflow::bundle_new",
            Code::BundleRegistry => "rhaiflow::bundle_registry",
            Code::CallDepth => "rhaiflow::call_depth",
            Code::Cancelled => "rhaiflow::cancelled",
            Code::Compile => "rhaiflow::compile",
            Code::CompileBudget => "rhaiflow::compile_budget",
            Code::DeploymentBusy => "rhaiflow::deployment_busy",
            Code::Deployments => "rhaiflow::deployments",
            Code::Error => "rhaiflow::error",
            Code::EventsJson => "rhaiflow::events_json",
            Code::FlowFile => "rhaiflow::flow_file",
            Code::InvalidGraph => "rhaiflow::invalid_graph",
            Code::Manifest => "rhaiflow::manifest",
            Code::MemoryLimit => "rhaiflow::memory_limit",
            Code::Module => "rhaiflow::module",
            Code::NoDeployment => "rhaiflow::no_deployment",
            Code::NoFunction => "rhaiflow::no_function",
            Code::NoScript => "rhaiflow::no_script",
            Code::NoSuchTask => "rhaiflow::no_such_task",
            Code::NoTarget => "rhaiflow::no_target",
            Code::NoWorkflow => "rhaiflow::no_workflow",
            Code::NotABundle => "rhaiflow::not_a_bundle",
            Code::OperationsLimit => "rhaiflow::operations_limit",
            Code::Param => "rhaiflow::param",
            Code::ParamTooDeep => "rhaiflow::param_too_deep",
            Code::Parameters => "rhaiflow::parameters",
            Code::ParamsFile => "rhaiflow::params_file",
            Code::ResultTooDeep => "rhaiflow::result_too_deep",
            Code::Resume => "rhaiflow::resume",
            Code::Runtime => "rhaiflow::runtime",
            Code::ScriptError => "rhaiflow::script_error",
            Code::ScriptTooLarge => "rhaiflow::script_too_large",
            Code::SizeLimit => "rhaiflow::size_limit",
            Code::Store => "rhaiflow::store",
            Code::TaskFailed => "rhaiflow::task_failed",
            Code::TasksLimit => "rhaiflow::tasks_limit",
            Code::Tokens => "rhaiflow::tokens",
            Code::Thrown => "rhaiflow::thrown",
            Code::UndeclaredParameter => "rhaiflow::undeclared_parameter",
            Code::UnknownFunction => "rhaiflow::unknown_function",
            Code::UnknownVariable => "rhaiflow::unknown_variable",
            Code::UnknownWorkflow => "rhaiflow::unknown_workflow",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
