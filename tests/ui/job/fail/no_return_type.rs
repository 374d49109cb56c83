#[qron::job(executor = "email")]
async fn email(user_id: i64) {
    let _ = user_id;
}

fn main() {}
