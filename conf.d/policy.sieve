# coid policy: runs once per recipient of every message coid delivers (RFC 5228 Sieve,
# evaluated by coid itself before the message reaches the store).
#
# This is the default, and it implements the COI server spec:
#   - a chat message for a user with COI enabled gets the IMAP keyword $Chat;
#   - with message-filter "active" it is filed into <mailbox-root>/Chats (created if
#     needed) before it is stored, so clients idling on INBOX are not woken;
#   - with "none" or "seen" it stays in INBOX (with $Chat).
# Everything else is kept as it is: the user's own Pigeonhole rules then run as before.
#
# What coid tells the script (RFC 5183 environment items; all values are strings):
#   vnd.coid.class           chat | group | mdn | email
#   vnd.coid.chat            yes | no   (chat, group, and read receipts from chat clients)
#   vnd.coid.signal          chat-version | message-id | references | delta-chat-encrypted | none
#   vnd.coid.group-id        the group id of a group message, else empty
#   vnd.coid.coi-enabled     yes | no   (the recipient's COI "enabled" setting)
#   vnd.coid.message-filter  none | active | seen
#   vnd.coid.mailbox-root    e.g. COI
#   vnd.coid.chats-folder    e.g. COI/Chats ("/" separates levels; coid translates it
#                            to the store's own hierarchy separator)
#   envelope "from" / "to"   the envelope sender and this recipient
#
# Actions coid carries out: keep, fileinto (:create, :copy, :flags), addflag/setflag/
# removeflag, discard, reject/ereject (a per-recipient 550). Scripts that require
# anything else (redirect, vacation, notify, include, editheader, duplicate, ...) are
# refused when coid loads them. A runtime error or the CPU limit keeps the message in
# INBOX and logs a warning.

require ["environment", "variables", "fileinto", "mailbox", "imap4flags"];

if allof (environment :is "vnd.coid.chat" "yes",
          environment :is "vnd.coid.coi-enabled" "yes") {
    if allof (environment :is "vnd.coid.message-filter" "active",
              environment :matches "vnd.coid.chats-folder" "*") {
        fileinto :create :flags "$Chat" "${1}";
        stop;
    }
    addflag "$Chat";
}
