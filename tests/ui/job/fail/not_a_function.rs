#[qron::job(executor = "email")]
struct Email;

fn main() {}
