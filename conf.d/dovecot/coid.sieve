# coid's Pigeonhole "before" script: files messages the way coid's policy decided.
#
# coid marks a routed message with trusted headers (and strips any such headers from
# incoming mail, so only coid can set them):
#   X-Coid-Folder: COI/Chats   target folder, in this server's hierarchy separator
#   X-Coid-Flags: $Chat        flags and keywords, space separated
#   X-Coid-Create: yes         create the folder if it is missing
# A message without them (plain email) passes untouched, and the user's own Sieve
# script runs exactly as before. A routed message is filed here and the user's script
# is skipped ("stop"): coid's policy has decided for it.
#
# Install: see 90-coid.conf next to this file. Precompile with sievec, because the
# mail user cannot write the compiled .svbin next to a root-owned script.

require ["fileinto", "mailbox", "imap4flags", "variables", "editheader"];

if exists "X-Coid-Folder" {
    set "folder" "INBOX";
    set "flags" "";
    set "create" "no";
    if header :matches "X-Coid-Folder" "*" { set "folder" "${1}"; }
    if header :matches "X-Coid-Flags" "*" { set "flags" "${1}"; }
    if header :is "X-Coid-Create" "yes" { set "create" "yes"; }
    deleteheader "X-Coid-Folder";
    deleteheader "X-Coid-Flags";
    deleteheader "X-Coid-Create";
    if string :is "${create}" "yes" {
        fileinto :create :flags "${flags}" "${folder}";
    } else {
        fileinto :flags "${flags}" "${folder}";
    }
    stop;
}
