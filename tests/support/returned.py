"""Mail that comes back, in the shapes real servers send it, wrapped around a real digest message.

Written after RFC 3464 (DSN), RFC 6522 (multipart/report), RFC 5965 (ARF) and the published
examples of each sender: Postfix's bounce (a text/plain explanation, message/delivery-status with
X-Postfix-* fields, the whole original as message/rfc822), Gmail's (Google's mailer-daemon, the
explanation, the status, the original's headers only as text/rfc822-headers), Microsoft 365's (an
HTML explanation, a status with a 4.4.7 or 5.x.x code, the headers), and feedback reports as
Microsoft (JMRP-style ARF) and Yahoo send them.
"""

from __future__ import annotations

import re


def _headers_only(original: bytes) -> bytes:
    return original.split(b"\r\n\r\n", 1)[0] + b"\r\n"


def _crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def postfix_bounce(original: bytes, recipient: str, *, status: str = "5.1.1", serial: str = "4Q9x1") -> bytes:
    head = _crlf(
        f"""Return-Path: <>
Delivered-To: news@news.example.org
Received: by mail.news.example.org (Postfix) id {serial}; Sat,  1 Mar 2025 12:05:02 +0000 (UTC)
Date: Sat,  1 Mar 2025 12:05:02 +0000 (UTC)
From: MAILER-DAEMON@mail.news.example.org (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: news@news.example.org
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="{serial}.1740830702/mail.news.example.org"
Content-Transfer-Encoding: 8bit
Message-Id: <20250301120502.{serial}@mail.news.example.org>

This is a MIME-encapsulated message.

--{serial}.1740830702/mail.news.example.org
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mail.news.example.org.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

<{recipient}>: host mx.example.net[192.0.2.25] said: 550 {status} <{recipient}>:
    Recipient address rejected: User unknown in virtual mailbox table (in
    reply to RCPT TO command)

--{serial}.1740830702/mail.news.example.org
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.news.example.org
X-Postfix-Queue-ID: {serial}
X-Postfix-Sender: rfc822; news@news.example.org
Arrival-Date: Sat,  1 Mar 2025 12:05:01 +0000 (UTC)

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: failed
Status: {status}
Remote-MTA: dns; mx.example.net
Diagnostic-Code: smtp; 550 {status} <{recipient}>: Recipient address rejected:
    User unknown in virtual mailbox table

--{serial}.1740830702/mail.news.example.org
Content-Description: Undelivered Message
Content-Type: message/rfc822
Content-Transfer-Encoding: 8bit

"""
    )
    return head + original + _crlf(f"\n--{serial}.1740830702/mail.news.example.org--\n")


def gmail_bounce(original: bytes, recipient: str) -> bytes:
    boundary = "000000000000d8d1a6062f1d2b11"
    return (
        _crlf(
            f"""Delivered-To: news@news.example.org
Return-Path: <>
Received: from mail-sor-f69.google.com (mail-sor-f69.google.com. [209.85.220.69])
        by mx.news.example.org with SMTPS id a1sor; Sat, 01 Mar 2025 04:05:03 -0800 (PST)
MIME-Version: 1.0
From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>
To: news@news.example.org
Auto-Submitted: auto-replied
Subject: Delivery Status Notification (Failure)
Message-ID: <67c2f8af.050a0220.1b2c3d.0001.GMR@mx.google.com>
Date: Sat, 01 Mar 2025 04:05:03 -0800 (PST)
Content-Type: multipart/report; boundary="{boundary}"; report-type=delivery-status

--{boundary}
Content-Type: multipart/related; boundary="000000000000d8d1a6062f1d2b12"

--000000000000d8d1a6062f1d2b12
Content-Type: text/plain; charset="UTF-8"


** Address not found **

Your message wasn't delivered to {recipient} because the address couldn't be found, or is
unable to receive mail.

The response was:

550 5.1.1 The email account that you tried to reach does not exist. https://support.google.com/mail/?p=NoSuchUser

--000000000000d8d1a6062f1d2b12--

--{boundary}
Content-Type: message/delivery-status

Reporting-MTA: dns; googlemail.com
Received-From-MTA: dns; news@news.example.org
Arrival-Date: Sat, 01 Mar 2025 04:05:02 -0800 (PST)
X-Original-Message-ID: <original>

Final-Recipient: rfc822; {recipient}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach does not exist.
Last-Attempt-Date: Sat, 01 Mar 2025 04:05:03 -0800 (PST)

--{boundary}
Content-Type: text/rfc822-headers

"""
        )
        + _headers_only(original)
        + _crlf(f"\n--{boundary}--\n")
    )


def microsoft_delay(original: bytes, recipient: str) -> bytes:
    boundary = "_7b2c8f1e-4c2a-4fb1-9d1e-3c1a2b3c4d5e_"
    return (
        _crlf(
            f"""Received: from DB8PR03MB1234.eurprd03.prod.outlook.com; Sat, 1 Mar 2025 16:05:04 +0000
MIME-Version: 1.0
From: postmaster@outlook.com
To: news@news.example.org
Date: Sat, 1 Mar 2025 16:05:04 +0000
Content-Type: multipart/report; report-type=delivery-status;
	boundary="{boundary}"
Content-Language: en-US
Message-ID: <5a8e1c2d-delay@DB8PR03MB1234.eurprd03.prod.outlook.com>
Subject: Delivery delayed:Your digest
Auto-Submitted: auto-replied

--{boundary}
Content-Type: text/html; charset="us-ascii"

<html><body><p><b>Delivery is delayed to these recipients or groups:</b></p>
<p>{recipient}</p><p>This message hasn't been delivered yet. We'll keep trying.</p></body></html>

--{boundary}
Content-Type: message/delivery-status

Reporting-MTA: dns;DB8PR03MB1234.eurprd03.prod.outlook.com
Received-From-MTA: dns;mail.news.example.org
Arrival-Date: Sat, 1 Mar 2025 12:05:04 +0000

Final-Recipient: rfc822;{recipient}
Action: delayed
Status: 4.4.7
Diagnostic-Code: smtp;400 4.4.7 Message delayed
Will-Retry-Until: Tue, 4 Mar 2025 12:05:04 +0000
X-Display-Name: {recipient}

--{boundary}
Content-Type: text/rfc822-headers

"""
        )
        + _headers_only(original)
        + _crlf(f"\n--{boundary}--\n")
    )


def microsoft_bounce(original: bytes, recipient: str) -> bytes:
    """Exchange Online's non-delivery report: an HTML part, then the status, then the message."""
    boundary = "_000_NDR_5b1c_"
    return (
        _crlf(
            f"""From: Microsoft Outlook <postmaster@contoso.onmicrosoft.com>
To: news@news.example.org
Date: Sat, 1 Mar 2025 12:05:09 +0000
Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"
MIME-Version: 1.0
Message-ID: <ndr-5b1c@AM0PR01MB5555.eurprd01.prod.exchangelabs.com>
Subject: Undeliverable: Your digest
Auto-Submitted: auto-replied

--{boundary}
Content-Type: text/html; charset="utf-8"

<p>Your message to {recipient} couldn't be delivered.</p>

--{boundary}
Content-Type: message/delivery-status

Reporting-MTA: dns;AM0PR01MB5555.eurprd01.prod.exchangelabs.com
Received-From-MTA: dns;mail.news.example.org

Final-Recipient: rfc822;{recipient}
Action: failed
Status: 5.2.2
Diagnostic-Code: smtp;554 5.2.2 mailbox full;
 Action: failed;
X-Display-Name: {recipient}

--{boundary}
Content-Type: message/rfc822

"""
        )
        + original
        + _crlf(f"\n--{boundary}--\n")
    )


def arf_complaint(original: bytes, recipient: str, *, style: str = "microsoft") -> bytes:
    """An RFC 5965 feedback report: Microsoft's JMRP-style (the whole message, recipient
    redacted in the report fields) or Yahoo's (headers only, Original-Rcpt-To given)."""
    boundary = "----=_Part_ARF_1"
    agent = "Microsoft JMRP" if style == "microsoft" else "Yahoo!-Mail-Feedback/2.0"
    rcpt = "" if style == "microsoft" else f"Original-Rcpt-To: {recipient}\n"
    inner = "message/rfc822" if style == "microsoft" else "text/rfc822-headers"
    body = original if style == "microsoft" else _headers_only(original)
    return (
        _crlf(
            f"""From: staff@hotmail.com
To: abuse@news.example.org
Subject: complaint about message from 192.0.2.10
Date: Sat, 1 Mar 2025 13:00:00 +0000
Message-ID: <arf-{style}-1@feedback.example.com>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
	boundary="{boundary}"

--{boundary}
Content-Type: text/plain; charset="US-ASCII"
Content-Transfer-Encoding: 7bit

This is an email abuse report for an email message received from IP 192.0.2.10 on
Sat, 1 Mar 2025 12:05:00 +0000.

--{boundary}
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: {agent}
Version: 1
Source-IP: 192.0.2.10
{rcpt}Arrival-Date: Sat, 1 Mar 2025 12:05:00 +0000

--{boundary}
Content-Type: {inner}
Content-Disposition: inline

"""
        )
        + body
        + _crlf(f"\n--{boundary}--\n")
    )


def unsubscribe_request(token: str, *, sender: str, to: str = "unsubscribe@news.example.org") -> bytes:
    """What a mail client sends for the List-Unsubscribe mailto (subject prefilled)."""
    return _crlf(
        f"""Return-Path: <{sender}>
Delivered-To: {to}
From: <{sender}>
To: {to}
Subject: unsubscribe {token}
Date: Sat, 1 Mar 2025 14:00:00 +0100
Message-ID: <unsub-{token[:8]}@mail.example.com>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

This message was generated by the unsubscribe link.
"""
    )


def plain(subject: str, to: str = "news@news.example.org") -> bytes:
    return _crlf(
        f"""From: Reader <reader@example.com>
To: {to}
Subject: {subject}
Date: Sat, 1 Mar 2025 15:00:00 +0100
Message-ID: <{re.sub(r"[^a-z]", "", subject.lower())}@example.com>

Thanks for the newsletter!
"""
    )


def bare_dsn(envelope: str, recipient: str) -> bytes:
    """A DSN that returns nothing of the original (as qmail-style or privacy-minded relays send):
    only the envelope sender it was delivered to and the recipient it names tie it to anything."""
    boundary = "bare.1740830702/relay.example.net"
    return _crlf(
        f"""Return-Path: <>
Delivered-To: {envelope}
From: MAILER-DAEMON@relay.example.net (Mail Delivery System)
To: {envelope}
Subject: Undelivered Mail Returned to Sender
Date: Sat,  1 Mar 2025 12:06:00 +0000
Message-ID: <bare-{recipient.split("@")[0]}@relay.example.net>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"

--{boundary}
Content-Type: text/plain; charset=us-ascii

<{recipient}>: mailbox unavailable

--{boundary}
Content-Type: message/delivery-status

Reporting-MTA: dns; relay.example.net

Final-Recipient: rfc822; {recipient}
Action: failed
Status: 5.2.1
Diagnostic-Code: smtp; 550 5.2.1 mailbox disabled

--{boundary}--
"""
    )
