//! Prints the api's OpenAPI document (as `GET /openapi.json` serves it) to stdout, without a
//! running stack: `make client` validates it and generates the TypeScript client's types.

fn main() -> anyhow::Result<()> {
    println!("{}", api::openapi_document()?);
    Ok(())
}
