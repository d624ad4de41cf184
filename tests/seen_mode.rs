//! The COI folders and the "seen" message filter, with the shipped
//! `conf.d/dovecot/92-coid-seen.conf` and `coid-seen.sieve` on real Dovecot 2.3
//! (Pigeonhole imapsieve reading the user's COI settings as METADATA served by coid):
//! COI/Chats and COI/Contacts exist at login, a chat stays in INBOX until the user sets
//! `\Seen` on it and then moves to COI/Chats, while plain mail and other users' chats
//! stay where they are.

mod common;

use common::metadata::{set_coi, socket_dir};
use common::stack::{DELIVERY_WAIT as WAIT, Stack, dovecot_opts, with_coid_metadata};
use common::{Imap, MessageBuilder, StoredMessage};

const SEEN_CONF: &str = include_str!("../conf.d/dovecot/92-coid-seen.conf");
const SEEN_SIEVE: &str = include_str!("../conf.d/dovecot/coid-seen.sieve");
const SEEN_MOVE: &str = include_str!("../conf.d/dovecot/coid-seen-move");

fn seen_stack() -> (Stack, tempfile::TempDir) {
    let (dir, socket) = socket_dir();
    let mut opts = with_coid_metadata(dovecot_opts("/"), &socket);
    opts.extra_conf.push_str(
        &SEEN_CONF
            .replace(
                "/etc/coid/dovecot/coid-seen.sieve",
                "@SIEVE_GLOBAL@/coid-seen.sieve",
            )
            .replace("/usr/lib/coid/sieve-execute", "@SIEVE_GLOBAL@/bin"),
    );
    opts.global_programs.push((
        "bin/coid-seen-move".to_owned(),
        SEEN_MOVE.replace(
            "DOVEADM=\"doveadm\"",
            "DOVEADM=\"doveadm -c @DOVECOT_CONF@\"",
        ),
    ));
    opts.global_sieve
        .push(("coid-seen.sieve".to_owned(), SEEN_SIEVE.to_owned()));
    let stack = Stack::start(opts, |_, coid| coid.dict_socket = Some(socket));
    (stack, dir)
}

fn mark_seen(imap: &mut Imap, message: &StoredMessage) {
    let session = imap.session();
    session.select(&message.mailbox).expect("SELECT");
    session
        .uid_store(message.uid.to_string(), "+FLAGS (\\Seen)")
        .expect("UID STORE");
}

#[test]
fn coi_folders_exist_at_login() {
    let (stack, _dir) = seen_stack();
    let mut imap = stack.dovecot.imap("carol");
    let names = imap.mailbox_names();
    assert!(names.iter().any(|n| n == "COI/Chats"), "{names:?}");
    assert!(names.iter().any(|n| n == "COI/Contacts"), "{names:?}");
    assert!(
        imap.subscribed_names().iter().any(|n| n == "COI/Chats"),
        "Chats is subscribed"
    );
}

#[test]
fn seen_filter_moves_a_chat_once_it_is_read() {
    let (stack, _dir) = seen_stack();
    let mut alice = stack.dovecot.imap("alice");
    set_coi(&mut alice, "seen");
    let mut bob = stack.dovecot.imap("bob");
    set_coi(&mut bob, "none");

    let send = |rcpt, msg| stack.send("bob@example.net", &[rcpt], &msg);
    let chat = send("alice@example.org", MessageBuilder::chat());
    let plain = send("alice@example.org", MessageBuilder::new().subject("plain"));
    let bobs = send("bob@example.org", MessageBuilder::chat());
    let alice_barrier = send("alice@example.org", MessageBuilder::chat());
    let bob_barrier = send("bob@example.org", MessageBuilder::chat());

    let stored = stack.dovecot.wait_for_message("alice", &chat, WAIT);
    assert_eq!(
        stored.mailbox, "INBOX",
        "seen mode keeps a new chat in INBOX"
    );
    assert!(stored.has_flag("$Chat") && !stored.has_flag("\\Seen"));
    mark_seen(&mut alice, &stored);
    let moved = common::wait_until(WAIT, || {
        let found = alice.find_all(&chat);
        (found.len() == 1 && found[0].mailbox == "COI/Chats").then(|| found[0].clone())
    })
    .unwrap_or_else(|| panic!("not moved: {:?}", alice.find_all(&chat)));
    assert!(
        moved.has_flag("$Chat") && moved.has_flag("\\Seen"),
        "{:?}",
        moved.flags
    );

    let plain_stored = stack.dovecot.wait_for_message("alice", &plain, WAIT);
    mark_seen(&mut alice, &plain_stored);
    let bob_stored = stack.dovecot.wait_for_message("bob", &bobs, WAIT);
    mark_seen(&mut bob, &bob_stored);
    // No fixed wait: in each session, a later STORE whose script does move a chat.
    // A session's STOREs run their imapsieve scripts in order, so once that chat has
    // moved, the script for the earlier STORE has run and left its message alone.
    let alice_next = stack
        .dovecot
        .wait_for_message("alice", &alice_barrier, WAIT);
    mark_seen(&mut alice, &alice_next);
    set_coi(&mut bob, "seen");
    let bob_next = stack.dovecot.wait_for_message("bob", &bob_barrier, WAIT);
    mark_seen(&mut bob, &bob_next);
    for (imap, id) in [(&mut alice, &alice_barrier), (&mut bob, &bob_barrier)] {
        common::wait_until(WAIT, || {
            let found = imap.find_all(id);
            (found.len() == 1 && found[0].mailbox == "COI/Chats").then_some(())
        })
        .unwrap_or_else(|| panic!("barrier chat not moved: {:?}", imap.find_all(id)));
    }
    let plain_now = alice.find_all(&plain);
    assert_eq!(plain_now.len(), 1);
    assert_eq!(plain_now[0].mailbox, "INBOX", "plain mail is not moved");
    let bob_now = bob.find_all(&bobs);
    assert_eq!(bob_now.len(), 1);
    assert_eq!(bob_now[0].mailbox, "INBOX", "filter none: not moved");
    assert!(bob_now[0].has_flag("\\Seen"));
}
