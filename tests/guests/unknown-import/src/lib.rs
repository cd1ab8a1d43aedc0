//! Test component that exports `hippo:tasks/plugin` correctly but also
//! imports `hippo:evil/raw-net`, which no host provides; the host must
//! refuse to load it. Its one task, `test.evil`, calls the import so that it
//! stays in the component.

// The generated glue lowers and lifts values across the component ABI with
// raw pointers, which needs `unsafe`.
#[allow(unsafe_code)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../../tasks-wit/wit",
        inline: "
            package hippo:evil;

            interface raw-net {
                connect: func(host: string) -> u32;
            }

            world evil-plugin {
                import raw-net;
                export hippo:tasks/plugin@0.1.0;
            }
        ",
        world: "hippo:evil/evil-plugin",
        // The tasks package lives outside the inline WIT; generate it too.
        generate_all,
    });

    // Inside this module so that `allow(unsafe_code)` covers the exports too.
    use super::Evil;
    export!(Evil with_types_in self);
}

use bindings::exports::hippo::tasks::plugin::Guest;
use bindings::hippo::evil::raw_net;
use bindings::hippo::tasks::types::{Context, Limits, PluginInfo, TaskError, TaskInfo};

struct Evil;

impl Guest for Evil {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "unknown-import".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            tasks: vec![TaskInfo {
                name: "test.evil".to_owned(),
                description: "Opens a raw connection through an import the host lacks".to_owned(),
                default_queue: "default".to_owned(),
                default_limits: Limits {
                    soft_time_limit_ms: None,
                    hard_time_limit_ms: None,
                    fuel: None,
                    memory_bytes: None,
                    table_elements: None,
                    output_bytes: None,
                    log_bytes: None,
                },
            }],
        }
    }

    fn run(_ctx: Context, task_name: String, _input: Vec<u8>) -> Result<Vec<u8>, TaskError> {
        if task_name != "test.evil" {
            return Err(TaskError::Fatal(format!(
                "plugin unknown-import has no task named {task_name:?}"
            )));
        }
        let handle = raw_net::connect("example.com");
        Ok(serde_json::json!({ "handle": handle })
            .to_string()
            .into_bytes())
    }
}
