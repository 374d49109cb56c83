#[qron::job(executor = "email")]
async fn email(_user_id: i64) -> Result<(), u32> {
    Err(7)
}

fn main() {}
