//! `bootstrap`: parses the configuration once per container, then serves every event.

use bff_core::{Backend, Deps, Level};
use bff_lambda::{OsRandom, ReqwestHttp, StdoutLog, SystemClock, serve, store};
use lambda_http::{Request, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let backend = Backend::from_lookup(|name| std::env::var(name).ok());
    let http = ReqwestHttp::new()?;
    // The shared store when BFF_DYNAMODB_TABLE names a table (template.yaml creates it for
    // BffSessionStore=kv or BffBackchannelLogout=true); one client and pool per container.
    let store = match store(|name| std::env::var(name).ok(), &http) {
        Ok(store) => store,
        Err(problem) => {
            StdoutLog.event(Level::Error, &format!("session store off: {problem}"));
            None
        }
    };
    if let Some(store) = &store {
        StdoutLog.event(Level::Info, &format!("session store: DynamoDB table {}", store.table()));
    }
    // Once per container; with a configuration problem every request answers 500 server_error.
    backend.log_startup(&StdoutLog, &SystemClock, store.is_some());
    let deps = Deps {
        clock: &SystemClock,
        random: &OsRandom,
        http: &http,
        log: &StdoutLog,
        store: store.as_ref(),
    };
    let (backend, deps) = (&backend, &deps);
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, std::convert::Infallible>(serve(backend, deps, request).await)
    }))
    .await
}
