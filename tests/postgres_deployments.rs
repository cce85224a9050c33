//! Deployments kept in a PostgreSQL store behave as in the SQLite file: the tests of
//! `deployments` that touch the stored deployment (create, list, show, delete, instances
//! written through, runtime properties and instance numbers carried over, one execution at a
//! time, damage, resume) run again, each in a database of its own on the tests' server. They
//! skip where no PostgreSQL is installed. Every command's output is checked never to show the
//! password of the store's URL (`Lab::store` gives one).
//!
//! They broke the same way: `deployments create --store postgres://...` was refused ("not
//! kept in PostgreSQL yet"), and so was every run on a stored deployment there.

use crate::deployments::{
    a_deployment_name_is_created_once_in, an_instance_state_the_store_cannot_record_fails_the_run_in,
    an_unknown_deployment_is_invalid_input_in, busy_deployment_refuses_a_second_execution_in,
    damaged_instance_data_is_reported_in, ids_of_removed_instances_are_not_reused_in,
    killed_install_finished_by_resume_in, runtime_properties_persist_in,
    three_tier_install_runs_each_lifecycle_in_order_targets_first_in, uninstall_then_delete_in, Lab,
};
use crate::postgres_server::postgres;

/// `#[test] fn NAME` running the `deployments` test body `BODY` in a lab of its own on the
/// tests' PostgreSQL server; skipped where no PostgreSQL is installed.
macro_rules! on_postgres {
    ($($name:ident => $body:ident;)*) => {$(
        #[test]
        fn $name() {
            let Some(_) = postgres() else { return };
            $body(Lab::on_postgres());
        }
    )*};
}

on_postgres! {
    create_list_show_install_on_postgres => three_tier_install_runs_each_lifecycle_in_order_targets_first_in;
    uninstall_then_delete_on_postgres => uninstall_then_delete_in;
    a_deployment_name_is_created_once_on_postgres => a_deployment_name_is_created_once_in;
    an_unknown_deployment_is_invalid_input_on_postgres => an_unknown_deployment_is_invalid_input_in;
    runtime_properties_persist_across_executions_on_postgres => runtime_properties_persist_in;
    ids_of_removed_instances_are_not_reused_on_postgres => ids_of_removed_instances_are_not_reused_in;
    a_second_execution_on_a_busy_deployment_is_refused_on_postgres => busy_deployment_refuses_a_second_execution_in;
    a_killed_install_is_finished_by_executions_resume_on_postgres => killed_install_finished_by_resume_in;
}

#[test]
fn an_instance_state_postgres_cannot_record_fails_the_run() {
    let Some(_) = postgres() else { return };
    an_instance_state_the_store_cannot_record_fails_the_run_in(
        Lab::on_postgres(),
        "CREATE FUNCTION fail_instance_writes() RETURNS trigger LANGUAGE plpgsql
           AS $$ BEGIN RAISE EXCEPTION 'disk I/O error (injected)'; END $$;
         CREATE TRIGGER fail_instance_writes BEFORE INSERT OR UPDATE ON rhaiflow_deployment_instances
           FOR EACH ROW EXECUTE FUNCTION fail_instance_writes();",
    );
}

#[test]
fn damaged_instance_data_is_reported_on_postgres() {
    let Some(_) = postgres() else { return };
    damaged_instance_data_is_reported_in(Lab::on_postgres);
}
