/*
 * callback: the source of the Ansible stdout callback plugin "orchd" that
 * the extension writes into the workdir (ANSIBLE_CALLBACK_PLUGINS points
 * there, ANSIBLE_STDOUT_CALLBACK=orchd).  ansible-core 2.19 has no JSON
 * callback of its own (that one is in the ansible.posix collection).
 *
 * The plugin writes one JSON object per line on stdout, each with
 * "orchd": 1 and an "event":
 *   {"event":"play","name":P}
 *   {"event":"task","name":T}                       (a task starts)
 *   {"event":"result","status":S,"host":H,"task":T,"action":A
 *    [,"msg":M,"ignored":B] [,"diff":[HEADER...]]}  S: ok changed failed
 *                                                   skipped unreachable;
 *                                                   msg for failed and
 *                                                   unreachable only
 *   {"event":"warning","msg":M}
 *   {"event":"stats","hosts":{H:{"ok":..,"changed":..,"failures":..,
 *    "unreachable":..,"skipped":..,"rescued":..,"ignored":..}},
 *    "custom":{...set_stats data of the run...},"per_host":{H:{...}}}
 * It never prints variables, module arguments or diff contents.
 */
#ifndef ANS_CALLBACK_H
#define ANS_CALLBACK_H

/* The plugin's file name in the callback directory. */
#define ANS_CALLBACK_FILE "orchd.py"

/* The plugin's Python source (NUL-terminated). */
extern const char ans_callback_source[];

#endif
