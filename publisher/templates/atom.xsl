<?xml version="1.0" encoding="UTF-8"?>
<!--
  atom.xsl: shows atom.xml (and the archive documents) as a readable page when someone opens the
  feed in a browser, with a note on how to subscribe. Feed readers ignore it. A static file: the
  build copies it beside atom.xml; atom.xml points at it with a relative xml-stylesheet
  instruction, because browsers only apply same-origin stylesheets. Browsers without XSLT show
  the raw XML instead, which is still a working feed.
  Article HTML is not rendered here (Firefox cannot disable output escaping): the summary is shown
  and the title links to the article's page. A title or summary of type="html" is the build's
  escaped plain text (only &lt; &gt; &amp;): the "text" template turns it back into that text.
-->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:atom="http://www.w3.org/2005/Atom"
    xmlns:fh="http://purl.org/syndication/history/1.0"
    exclude-result-prefixes="atom fh">

  <xsl:output method="html" encoding="UTF-8" indent="yes" doctype-system="about:legacy-compat"/>

  <xsl:template match="/atom:feed">
    <xsl:variable name="self" select="atom:link[@rel='self']/@href"/>
    <xsl:variable name="home" select="atom:link[@rel='alternate']/@href"/>
    <html lang="{@xml:lang}">
      <head>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <meta name="color-scheme" content="light dark"/>
        <title><xsl:apply-templates select="atom:title" mode="text"/> (web feed)</title>
        <style>
          :root { color-scheme: light dark; --muted: #5b6270; --box: #eef3fb; --line: #c9d5ea; }
          @media (prefers-color-scheme: dark) {
            :root { --muted: #a8b0bd; --box: #1d2633; --line: #33435c; }
          }
          body { font: 1.05rem/1.6 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
                 max-width: 44rem; margin: 0 auto; padding: 1.25rem; }
          h1 { font-size: 1.8rem; line-height: 1.2; margin: 0.2rem 0; }
          h2 { font-size: 1.2rem; margin-top: 2rem; }
          h3 { font-size: 1.1rem; margin: 0; }
          .badge { display: inline-block; font-size: 0.8rem; text-transform: uppercase;
                   letter-spacing: 0.06em; color: var(--muted); margin: 0; }
          .subscribe { background: var(--box); border: 1px solid var(--line); border-radius: 0.5rem;
                       padding: 0.25rem 1rem; margin-top: 1rem; }
          .subscribe h2 { margin-top: 0.75rem; }
          code { font-size: 0.95rem; word-break: break-all; }
          article { padding: 0.9rem 0; border-bottom: 1px solid var(--line); }
          .meta { color: var(--muted); font-size: 0.9rem; margin: 0.15rem 0 0.35rem; }
          .summary { margin: 0; }
          nav { display: flex; gap: 1.5rem; margin: 1.5rem 0; }
          .muted { color: var(--muted); }
        </style>
      </head>
      <body>
        <header>
          <p class="badge">Web feed</p>
          <h1><xsl:apply-templates select="atom:title" mode="text"/></h1>
          <xsl:if test="atom:subtitle">
            <p class="muted"><xsl:apply-templates select="atom:subtitle" mode="text"/></p>
          </xsl:if>
        </header>

        <section class="subscribe" id="subscribe">
          <h2>How to subscribe</h2>
          <p>This page is a <strong>web feed</strong>: copy its address into a feed reader (an app
            or a website that collects news from the sites you follow) and new articles will come to
            you as they are published.</p>
          <p>Feed address:
            <code>
              <xsl:choose>
                <xsl:when test="atom:link[@rel='current']"><xsl:value-of select="atom:link[@rel='current']/@href"/></xsl:when>
                <xsl:otherwise><xsl:value-of select="$self"/></xsl:otherwise>
              </xsl:choose>
            </code>
          </p>
          <p>No feed reader yet? Search for “RSS reader” or “feed reader” in your app store; most
            are free. Or simply <a href="{$home}">read the articles on the website</a>.</p>
        </section>

        <xsl:if test="fh:archive">
          <p class="muted">This is an archive page of older articles; it does not change.
            The newest articles are in <a href="{atom:link[@rel='current']/@href}">the current feed</a>.</p>
        </xsl:if>

        <main>
          <h2>
            <xsl:choose>
              <xsl:when test="fh:archive">Archived articles</xsl:when>
              <xsl:otherwise>Latest articles</xsl:otherwise>
            </xsl:choose>
          </h2>
          <xsl:if test="not(atom:entry)">
            <p class="muted">
              <xsl:choose>
                <xsl:when test="fh:archive">No articles remain in this archive.</xsl:when>
                <xsl:otherwise>No articles yet.</xsl:otherwise>
              </xsl:choose>
            </p>
          </xsl:if>
          <xsl:apply-templates select="atom:entry"/>
        </main>

        <nav>
          <xsl:if test="atom:link[@rel='next-archive']">
            <a href="{atom:link[@rel='next-archive']/@href}">← Newer articles</a>
          </xsl:if>
          <xsl:if test="atom:link[@rel='prev-archive']">
            <a href="{atom:link[@rel='prev-archive']/@href}">Older articles →</a>
          </xsl:if>
        </nav>
      </body>
    </html>
  </xsl:template>

  <xsl:template match="atom:entry">
    <article>
      <h3><a href="{atom:link[@rel='alternate']/@href}"><xsl:apply-templates select="atom:title" mode="text"/></a></h3>
      <p class="meta">
        <time datetime="{atom:published}"><xsl:call-template name="day"><xsl:with-param name="stamp" select="atom:published"/></xsl:call-template></time>
        <xsl:if test="atom:author/atom:name">
          <xsl:text> · </xsl:text><xsl:value-of select="atom:author/atom:name"/>
        </xsl:if>
      </p>
      <p class="summary"><xsl:apply-templates select="atom:summary" mode="text"/></p>
    </article>
  </xsl:template>

  <!-- An Atom text construct as the text it stands for. -->
  <xsl:template match="*" mode="text">
    <xsl:choose>
      <xsl:when test="@type = 'html'">
        <xsl:call-template name="unescape"><xsl:with-param name="s" select="string(.)"/></xsl:call-template>
      </xsl:when>
      <xsl:otherwise><xsl:value-of select="."/></xsl:otherwise>
    </xsl:choose>
  </xsl:template>

  <!-- &lt; &gt; &amp; back to < > & (the only references the build writes), left to right. -->
  <xsl:template name="unescape">
    <xsl:param name="s"/>
    <xsl:choose>
      <xsl:when test="contains($s, '&amp;')">
        <xsl:value-of select="substring-before($s, '&amp;')"/>
        <xsl:variable name="rest" select="substring-after($s, '&amp;')"/>
        <xsl:choose>
          <xsl:when test="starts-with($rest, 'lt;')">&lt;<xsl:call-template name="unescape"><xsl:with-param name="s" select="substring($rest, 4)"/></xsl:call-template></xsl:when>
          <xsl:when test="starts-with($rest, 'gt;')">&gt;<xsl:call-template name="unescape"><xsl:with-param name="s" select="substring($rest, 4)"/></xsl:call-template></xsl:when>
          <xsl:when test="starts-with($rest, 'amp;')">&amp;<xsl:call-template name="unescape"><xsl:with-param name="s" select="substring($rest, 5)"/></xsl:call-template></xsl:when>
          <xsl:otherwise>&amp;<xsl:call-template name="unescape"><xsl:with-param name="s" select="$rest"/></xsl:call-template></xsl:otherwise>
        </xsl:choose>
      </xsl:when>
      <xsl:otherwise><xsl:value-of select="$s"/></xsl:otherwise>
    </xsl:choose>
  </xsl:template>

  <!-- An RFC 3339 stamp shown as the pages show dates, "19 February 2025": the day as written in
       the stamp's own offset (for an article without a time, the site's timezone). -->
  <xsl:template name="day">
    <xsl:param name="stamp"/>
    <xsl:variable name="month" select="number(substring($stamp, 6, 2))"/>
    <xsl:value-of select="number(substring($stamp, 9, 2))"/>
    <xsl:text> </xsl:text>
    <xsl:value-of select="normalize-space(substring('January  February March    April    May      June     July     August   SeptemberOctober  November December ', ($month - 1) * 9 + 1, 9))"/>
    <xsl:text> </xsl:text>
    <xsl:value-of select="substring($stamp, 1, 4)"/>
  </xsl:template>
</xsl:stylesheet>
