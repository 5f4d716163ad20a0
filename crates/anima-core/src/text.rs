//! Words of free text as the services compare it: anima-ai's mail
//! classifier and the library's search read text the same way.

/// The lower-case words of `text`: runs of letters and digits, any script.
pub fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_runs_of_letters_and_digits_in_lower_case() {
        assert_eq!(
            words("ERR_CONN_RESET in WI-12, Straße 4b!").collect::<Vec<_>>(),
            ["err", "conn", "reset", "in", "wi", "12", "straße", "4b"]
        );
    }
}
