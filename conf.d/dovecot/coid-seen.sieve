# coid's Pigeonhole imapsieve script: the COI "seen" message filter (COI server spec,
# "message-filter"). When the user sets \Seen on a $Chat message in INBOX and their
# COI settings say enabled=yes and message-filter=seen, the message moves to
# <mailbox-root>/Chats, flags and keywords kept (by coid-seen-move, through doveadm:
# imapsieve alone can only copy on a flag change). The settings are read with RFC 5490
# servermetadata from the same METADATA entries COI clients set, which coid serves
# (91-coid-metadata.conf). Messages delivered already \Seen are not moved (nothing
# sets \Seen on them later).
#
# With a "." hierarchy separator write "${root}.Chats" below instead of "${root}/Chats".
#
# Install: see 92-coid-seen.conf. Precompile with sievec, because the mail user cannot
# write the compiled .svbin next to a root-owned script.

require ["imapsieve", "environment", "variables", "imap4flags",
         "servermetadata", "vnd.dovecot.execute"];

set "config" "/private/vendor/vendor.dovecot/coi/config";
if allof (environment :is "imap.cause" "FLAG",
          environment :contains "imap.changedflags" "\\Seen",
          hasflag "\\Seen",
          hasflag "$Chat",
          servermetadata :is "${config}/enabled" "yes",
          servermetadata :is "${config}/message-filter" "seen") {
    set "root" "COI";
    if servermetadata :matches "${config}/mailbox-root" "*" { set "root" "${1}"; }
    set "msgid" "";
    if header :matches "Message-ID" "*" { set "msgid" "${1}"; }
    if environment :matches "imap.user" "*" { set "user" "${1}"; }
    if not string :is "${msgid}" "" {
        execute "coid-seen-move" ["${user}", "${root}/Chats", "${msgid}"];
    }
}
