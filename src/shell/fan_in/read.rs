//! The task cards and members of a run, read for fan-in.

use super::*;

/// A delegation of a card, with what a stamp would need to be written.
#[derive(Debug)]
pub struct MemberFile {
    pub member: Member,
    pub name: OsString,
    pub path: PathBuf,
    /// The bytes as read, kept only while a stamp may be needed.
    pub bytes: Option<Vec<u8>>,
}

/// A task card document, read.
#[derive(Debug)]
pub struct CardFile {
    pub doc: CardDoc,
    pub name: OsString,
    pub bytes: Vec<u8>,
}

/// Reads `RUN_DIR/task-cards/*.json`. A card's document is `<id>.json` and nothing else: a
/// file whose `task_card_id` names another card is a problem (`duplicate_task_card`), never
/// a second card, and is remembered in that card's `claimed_by`; a card with such claims and
/// no document of its own is `missing` (not decided).
pub fn read_cards(
    run: &Run,
    config: &Config,
    diag: &mut Diagnostics,
) -> (Option<scan::Listing>, BTreeMap<String, CardFile>) {
    let mut cards = BTreeMap::new();
    let Some(listing) = scan::list_for_writing(run, "task-cards", config, diag) else {
        return (None, cards);
    };
    let mut buf = Vec::new();
    for entry in &listing.entries {
        if !scan::is_document_name(entry.name) {
            continue;
        }
        let path = scan::entry_path(run, "task-cards", entry.name);
        let meta = match listing.dir.read_entry(&entry, MAX_DOCUMENT_BYTES, &mut buf) {
            Ok(meta) => meta,
            Err(error) => {
                diag.error(&path, &error.to_string(), Exit::FileProblem);
                continue;
            }
        };
        // What a card's rewrite could not keep is a problem before anything is decided on it.
        if let Err(error) = model::check_document(&buf) {
            diag.error(&path, &error.to_string(), Exit::FileProblem);
            continue;
        }
        let value: Value = match serde_json::from_slice(&buf) {
            Ok(value @ Value::Object(_)) => value,
            Ok(_) => {
                diag.error(&path, "not a JSON object", Exit::FileProblem);
                continue;
            }
            Err(error) => {
                diag.error(
                    &path,
                    &model::syntax_error(&buf, &error).to_string(),
                    Exit::FileProblem,
                );
                continue;
            }
        };
        let file_name = entry.name.to_string_lossy();
        let stem = file_name.trim_end_matches(".json").to_string();
        let id = value
            .get("task_card_id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| stem.clone());
        if id != stem {
            diag.error(
                &path,
                &format!(
                    "duplicate_task_card: claims task card {:?}, whose document can only be task-cards/{}.json; not a card",
                    crate::core::text::preview(&id, 128),
                    crate::core::text::preview(&id, 128),
                ),
                Exit::FileProblem,
            );
            // Neither the card it claims nor the card its name says may be decided without a
            // document of its own: either may have lost it to a rename.
            for card in [id, stem] {
                let claimed = cards.entry(card).or_insert_with(|| CardFile {
                    doc: CardDoc {
                        missing: true,
                        ..CardDoc::default()
                    },
                    name: OsString::new(),
                    bytes: Vec::new(),
                });
                claimed
                    .doc
                    .claimed_by
                    .push(crate::core::text::preview(&file_name, 128));
            }
            continue;
        }
        let claimed_by = cards
            .remove(&id)
            .map(|placeholder| placeholder.doc.claimed_by)
            .unwrap_or_default();
        let owner = owned_document(&meta);
        cards.insert(
            id,
            CardFile {
                doc: CardDoc {
                    owner: owner.unwrap_or(meta.uid),
                    foreign: owner.is_none(),
                    claimed_by,
                    ..CardDoc::of(&value)
                },
                name: entry.name.to_os_string(),
                bytes: std::mem::take(&mut buf),
            },
        );
    }
    (Some(listing), cards)
}
