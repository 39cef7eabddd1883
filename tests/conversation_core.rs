//! The conversation alone, with no chat platform at all: neutral events in, a recording
//! [`ChatPort`] out, a bucket kept in memory behind the uploader's messages, and the real store.
//! The same conversation serves VK people here, which is how it will serve the VK adapter.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::{FutureExt, LocalBoxFuture};
use tg_ingest::actors::objects::{CopyObject, DeleteObject, ObjectsExist, ObjectsPort};
use tg_ingest::actors::store::StoreActor;
use tg_ingest::actors::uploader::{Upload, UploadError, UploadProgress, UploadReport};
use tg_ingest::clients::s3::objects::CopyReport;
use tg_ingest::clients::s3::StorageError;
use tg_ingest::conversation::{texts, Conversation, ConversationDeps};
use tg_ingest::domain::chat::{
    ChatError, ChatPort, Event, EventKind, IncomingDocument, Keyboard, Person, Platform, Press,
    Reply,
};
use tg_ingest::store::Store;

/// One message the conversation sent or edited.
#[derive(Debug, Clone)]
struct Said {
    chat: i64,
    text: String,
    keyboard: Option<Keyboard>,
}

/// A chat that records what the conversation says.
#[derive(Default)]
struct RecordingChat {
    said: RefCell<Vec<Said>>,
    answers: RefCell<Vec<String>>,
    /// Texts of the edits of earlier messages.
    edits: RefCell<Vec<String>>,
}

impl ChatPort for RecordingChat {
    fn send<'a>(
        &'a self,
        chat: i64,
        text: &'a str,
        reply: Reply<'a>,
    ) -> LocalBoxFuture<'a, Result<i64, ChatError>> {
        let keyboard = reply.keyboard;
        let mut said = self.said.borrow_mut();
        let message_id = said.len() as i64 + 1;
        said.push(Said {
            chat,
            text: text.to_string(),
            keyboard: keyboard.cloned(),
        });
        async move { Ok(message_id) }.boxed_local()
    }

    fn edit<'a>(
        &'a self,
        _chat: i64,
        _message_id: i64,
        text: &'a str,
        _keyboard: Option<&'a Keyboard>,
    ) -> LocalBoxFuture<'a, Result<(), ChatError>> {
        self.edits.borrow_mut().push(text.to_string());
        async { Ok(()) }.boxed_local()
    }

    fn answer<'a>(
        &'a self,
        _chat: i64,
        _press: &'a Press,
        text: &'a str,
    ) -> LocalBoxFuture<'a, Result<(), ChatError>> {
        self.answers.borrow_mut().push(text.to_string());
        async { Ok(()) }.boxed_local()
    }
}

type Objects = Arc<Mutex<HashMap<String, Vec<u8>>>>;

/// The uploader's messages over a bucket in memory; `files` are the platform's files by id.
struct MemoryBucket {
    objects: Objects,
    files: HashMap<String, Vec<u8>>,
}

impl Actor for MemoryBucket {
    type Context = Context<Self>;
}

impl Handler<Upload> for MemoryBucket {
    type Result = Result<UploadReport, UploadError>;

    fn handle(&mut self, msg: Upload, _: &mut Context<Self>) -> Self::Result {
        let bytes = self.files.get(&msg.file_id).cloned().unwrap_or_default();
        let report = UploadReport {
            key: msg.key.clone(),
            bytes: bytes.len() as u64,
            parts: 1,
            multipart: false,
            sha256: "00".repeat(32),
            seconds: 0.0,
        };
        self.objects.lock().unwrap().insert(msg.key, bytes);
        Ok(report)
    }
}

impl Handler<UploadProgress> for MemoryBucket {
    type Result = ();

    fn handle(&mut self, _: UploadProgress, _: &mut Context<Self>) {}
}

impl Handler<ObjectsExist> for MemoryBucket {
    type Result = Result<Vec<bool>, Arc<StorageError>>;

    fn handle(&mut self, msg: ObjectsExist, _: &mut Context<Self>) -> Self::Result {
        let objects = self.objects.lock().unwrap();
        Ok(msg.keys.iter().map(|k| objects.contains_key(k)).collect())
    }
}

impl Handler<CopyObject> for MemoryBucket {
    type Result = Result<Option<CopyReport>, Arc<StorageError>>;

    fn handle(&mut self, msg: CopyObject, _: &mut Context<Self>) -> Self::Result {
        let mut objects = self.objects.lock().unwrap();
        let Some(bytes) = objects.get(&msg.from).cloned() else {
            return Ok(None);
        };
        let report = CopyReport {
            bytes: bytes.len() as u64,
            parts: 0,
        };
        objects.insert(msg.to, bytes);
        Ok(Some(report))
    }
}

impl Handler<DeleteObject> for MemoryBucket {
    type Result = Result<(), Arc<StorageError>>;

    fn handle(&mut self, msg: DeleteObject, _: &mut Context<Self>) -> Self::Result {
        self.objects.lock().unwrap().remove(&msg.0);
        Ok(())
    }
}

struct Core {
    conversation: Rc<Conversation>,
    chat: Rc<RecordingChat>,
    objects: Objects,
    progress: Recipient<UploadProgress>,
    next: RefCell<i64>,
    _dir: tempfile::TempDir,
}

impl Core {
    fn start(files: &[(&str, &[u8])]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreActor::new(Store::open(&dir.path().join("state.db")).unwrap()).start();
        let objects = Objects::default();
        let bucket = MemoryBucket {
            objects: objects.clone(),
            files: files
                .iter()
                .map(|(id, bytes)| (id.to_string(), bytes.to_vec()))
                .collect(),
        }
        .start();
        let chat = Rc::new(RecordingChat::default());
        let conversation = Conversation::new(ConversationDeps {
            chat: chat.clone(),
            uploader: bucket.clone().recipient(),
            objects: ObjectsPort {
                exist: bucket.clone().recipient(),
                copy: bucket.clone().recipient(),
                delete: bucket.clone().recipient(),
            },
            store,
            admins: vec![],
            download_limit: None,
            max_key_bytes: 1024,
            progress_interval: Duration::from_millis(0),
            first_ticket: 1,
        });
        Self {
            conversation: Rc::new(conversation),
            chat,
            objects,
            progress: bucket.recipient(),
            next: RefCell::new(0),
            _dir: dir,
        }
    }

    /// Hands the conversation one event of `person`; answers the last message said to them.
    async fn event(&self, person: Person, kind: EventKind) -> String {
        *self.next.borrow_mut() += 1;
        let n = *self.next.borrow();
        let event = Event {
            person,
            chat: chat_of(person),
            reference: format!("test:{n}"),
            message_id: Some(n),
            kind,
        };
        self.conversation
            .clone()
            .handle(event, self.progress.clone())
            .await
            .unwrap();
        self.last(person).text
    }

    fn last(&self, person: Person) -> Said {
        self.chat
            .said
            .borrow()
            .iter()
            .rev()
            .find(|s| s.chat == chat_of(person))
            .cloned()
            .unwrap()
    }

    fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.objects.lock().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    }
}

/// Each person's private chat (the two platforms number chats independently).
fn chat_of(person: Person) -> i64 {
    match person.platform {
        Platform::Vk => 2_000_000_000 + person.user,
        Platform::Telegram => person.user,
    }
}

fn text(t: &str) -> EventKind {
    EventKind::Text(t.into())
}

fn doc(file: &str, name: &str) -> EventKind {
    EventKind::Document(IncomingDocument {
        file: file.into(),
        name: Some(name.into()),
        unique_id: None,
        mime_type: Some("text/plain".into()),
        size: Some(4),
    })
}

fn press(data: &str) -> EventKind {
    EventKind::Press(Press {
        id: "p".into(),
        data: data.into(),
        message_id: Some(1),
    })
}

#[actix_rt::test]
async fn the_same_conversation_serves_any_platform() {
    let core = Core::start(&[("vk-doc", b"from vk"), ("tg-doc", b"from tg")]);
    let vk = Person {
        platform: Platform::Vk,
        user: 7,
    };
    let tg = Person {
        platform: Platform::Telegram,
        user: 7,
    };
    assert_eq!(core.event(vk, text("hi")).await, texts::GREETING);
    assert_eq!(
        core.event(vk, text("again")).await,
        texts::DOCUMENT_REQUIRED
    );
    assert_eq!(
        core.event(vk, EventKind::Photo).await,
        texts::PHOTO_IS_NOT_A_DOCUMENT
    );
    // The same number on another platform is another person: greeted on its own.
    assert_eq!(core.event(tg, text("hi")).await, texts::GREETING);

    let saved = core.event(vk, doc("vk-doc", "a.txt")).await;
    assert!(
        saved.starts_with("[document has been saved] «a.txt»"),
        "{saved}"
    );
    let rename = core.last(vk).keyboard.unwrap()[0][0].clone();
    assert_eq!(rename.label, "Rename");
    let saved = core.event(tg, doc("tg-doc", "a.txt")).await;
    assert!(
        saved.contains("«a (2).txt»"),
        "another person's name is numbered: {saved}"
    );

    // Someone else's Rename is refused; the owner's works.
    core.event(tg, press(&rename.data)).await;
    assert!(core
        .chat
        .answers
        .borrow()
        .last()
        .unwrap()
        .contains("Only the person"));
    let asked = core.event(vk, press(&rename.data)).await;
    assert!(asked.starts_with("[rename]"), "{asked}");
    let done = core.event(vk, text("b")).await;
    assert_eq!(done, "[document has been renamed] «a.txt» is now «b.txt».");
    assert_eq!(core.keys(), ["a (2).txt", "b.txt"]);
    let list = core
        .event(
            vk,
            EventKind::Command {
                name: "files".into(),
                args: String::new(),
            },
        )
        .await;
    assert!(
        list.contains("(1–1 of 1)") && list.contains("1. b.txt — 7 B"),
        "{list}"
    );
}

#[actix_rt::test]
async fn forged_file_list_buttons_show_the_last_page_or_are_ignored() {
    let core = Core::start(&[("doc", b"data")]);
    let tg = Person {
        platform: Platform::Telegram,
        user: 9,
    };
    core.event(tg, text("hi")).await;
    core.event(tg, doc("doc", "only.txt")).await;
    // A page far past the end, up to the largest number a button can carry: the last page.
    for data in ["fl:9223372036854775807", "fl:4611686018427387904", "fl:7"] {
        core.event(tg, press(data)).await;
        let shown = core.chat.edits.borrow().last().cloned().unwrap_or_default();
        assert!(
            shown.contains("(1–1 of 1)") && shown.contains("only.txt"),
            "{data}: {shown}"
        );
    }
    // Negative or not a number: answered as not ours, nothing else happens.
    let edits = core.chat.edits.borrow().len();
    for data in [
        "fl:-1",
        "fl:abc",
        "fl:",
        "fa:-9223372036854775808",
        "fl:1e3",
        "fl:18446744073709551615",
    ] {
        core.event(tg, press(data)).await;
        assert_eq!(
            core.chat.answers.borrow().last().map(String::as_str),
            Some(texts::NOT_OURS),
            "{data}"
        );
    }
    assert_eq!(core.chat.edits.borrow().len(), edits, "no list shown");
}
