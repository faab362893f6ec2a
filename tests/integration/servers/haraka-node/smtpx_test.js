'use strict'
// The Haraka plugin of smtpx's integration tests (tests/integration/servers/haraka.py copies
// it into the private instance's plugins/ directory). Its settings come from
// config/smtpx_test.json, written by haraka.py:
//
//   users          address -> folder: recipients accepted at RCPT; any other gets
//                  "550 5.1.1" (Haraka refuses a recipient no plugin accepts anyway, but
//                  with a vaguer reply)
//   refuse_marker  a message whose Subject contains it is refused after its content
//                  ("550 5.7.1", from the data_post hook): a refused message
//   mail_dir       where accepted mail goes: one maildir per folder, one file per
//                  recipient, with Return-Path and Delivered-To prepended as Postfix's
//                  virtual(8) and Dovecot write them, so that the tests read all three
//                  servers' deliveries the same way
//
// No DNS (the reverse lookup is answered here) and nothing leaves the instance.

const fs = require('node:fs')
const path = require('node:path')

exports.register = function () {
    this.cfg = this.config.get('smtpx_test.json')
}

// Haraka resolves every client's address; the tests run with no network.
exports.hook_lookup_rdns = function (next) {
    next(OK, 'localhost')
}

exports.hook_rcpt = function (next, connection, params) {
    const address = params[0].address.toLowerCase()
    if (Object.hasOwn(this.cfg.users, address)) return next(OK)
    next(DENY, '5.1.1 no such user here')
}

exports.hook_data_post = function (next, connection) {
    const subject = connection.transaction.header.get('Subject') || ''
    if (subject.includes(this.cfg.refuse_marker)) return next(DENY, '5.7.1 message refused')
    next()
}

exports.hook_queue = function (next, connection) {
    const txn = connection.transaction
    const sender = txn.mail_from.address
    // Maildir files end lines with LF (like the other two servers' deliveries).
    txn.message_stream.get_data({ line_endings: '\n' }, (data) => {
        try {
            txn.rcpt_to.forEach((rcpt, index) => {
                const folder = this.cfg.users[rcpt.address.toLowerCase()]
                const maildir = path.join(this.cfg.mail_dir, folder)
                for (const sub of ['tmp', 'new', 'cur']) {
                    fs.mkdirSync(path.join(maildir, sub), { recursive: true })
                }
                const name = `${Date.now()}.${txn.uuid}.${index}`
                const trace = `Return-Path: <${sender}>\nDelivered-To: ${rcpt.address}\n`
                const tmp = path.join(maildir, 'tmp', name)
                fs.writeFileSync(tmp, Buffer.concat([Buffer.from(trace), data]))
                // A file in new/ is always complete (the maildir rule the tests rely on).
                fs.renameSync(tmp, path.join(maildir, 'new', name))
            })
        } catch (err) {
            connection.logerror(this, `cannot store the message: ${err}`)
            return next(DENYSOFT, '4.3.0 cannot store the message')
        }
        next(OK, `queued as ${txn.uuid}`)
    })
}
