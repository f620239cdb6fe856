using System.Text;

namespace OllamaContinuity.Internal;

/// <summary>
/// The one sanitizer for text that came from the network (model names, versions, server headers, error bodies)
/// before it enters an output object, a view, a log or a report. A hostile server can otherwise set the window
/// title (OSC), write the clipboard (OSC 52), switch screens or erase and rewrite a line (CSI), or forge table
/// lines with CR/LF. Escape sequences (ESC and the C1 introducers CSI, OSC, DCS, SOS, PM, APC, with their
/// parameters and string bodies) are removed whole; every other C0 and C1 control character and DEL is removed,
/// except TAB, CR and LF, which become a space; bidirectional overrides and isolates (U+202A-U+202E,
/// U+2066-U+2069), which can make text read in a different order than it is, are removed too.
/// </summary>
public static class TerminalSafe
{
    /// <summary>The text without control characters or escape sequences; null stays null.</summary>
    public static string? Clean(string? text) => text is null ? null : CleanCore(text);

    /// <summary>Like <see cref="Clean(string?)"/>, then cut to <paramref name="maxLength"/> characters (an ellipsis marks the cut).</summary>
    public static string Clean(string? text, int maxLength)
    {
        var s = CleanCore(text ?? "");
        return s.Length <= maxLength ? s : s[..Math.Max(0, maxLength - 1)] + "…";
    }

    /// <summary>True when <paramref name="text"/> would be changed by <see cref="Clean(string?)"/>.</summary>
    public static bool NeedsCleaning(string? text) => text is not null && text.Any(c => IsControl(c) || IsBidi(c));

    private static string CleanCore(string s)
    {
        if (!NeedsCleaning(s))
        {
            return s;
        }

        var sb = new StringBuilder(s.Length);
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            if (c == '\u001B' || c is >= '\u0080' and <= '\u009F')
            {
                i = SkipEscape(s, i);
                continue;
            }

            if (c is '\t' or '\r' or '\n')
            {
                sb.Append(' ');
            }
            else if (!IsControl(c) && !IsBidi(c))
            {
                sb.Append(c);
            }
        }

        return sb.ToString();
    }

    /// <summary>Returns the index of the last character of the escape sequence starting at <paramref name="i"/>.</summary>
    private static int SkipEscape(string s, int i)
    {
        // The introducer: ESC X (7-bit) or the C1 character itself (8-bit).
        char kind;
        if (s[i] == '\u001B')
        {
            if (i + 1 >= s.Length)
            {
                return i;
            }

            kind = s[i + 1];
            i++;
            kind = kind switch { '[' => '\u009B', ']' => '\u009D', 'P' => '\u0090', 'X' => '\u0098', '^' => '\u009E', '_' => '\u009F', _ => kind };
            if (kind is not ('\u009B' or '\u009D' or '\u0090' or '\u0098' or '\u009E' or '\u009F'))
            {
                // Two-character sequences (ESC c, ESC 7, ESC ( B ...): drop ESC, its intermediates and final byte.
                while (i < s.Length - 1 && s[i] is >= ' ' and <= '/')
                {
                    i++;
                }

                return i;
            }
        }
        else
        {
            kind = s[i];
        }

        if (kind == '\u009B')
        {
            // CSI: parameter and intermediate bytes, then one final byte 0x40-0x7E.
            for (i++; i < s.Length; i++)
            {
                if (s[i] is >= '@' and <= '~')
                {
                    return i;
                }

                if (s[i] is not (>= ' ' and <= '?'))
                {
                    return i - 1; // malformed: stop before the stray character, which is then cleaned on its own
                }
            }

            return s.Length - 1;
        }

        if (kind is '\u009D' or '\u0090' or '\u0098' or '\u009E' or '\u009F')
        {
            // A string: up to BEL (OSC), ST (ESC \) or the C1 ST.
            for (i++; i < s.Length; i++)
            {
                if (s[i] is '\u0007' or '\u009C')
                {
                    return i;
                }

                if (s[i] == '\u001B' && i + 1 < s.Length && s[i + 1] == '\\')
                {
                    return i + 1;
                }
            }

            return s.Length - 1;
        }

        return i; // any other C1 character alone
    }

    private static bool IsControl(char c) => c < ' ' || c is >= '\u007F' and <= '\u009F';

    private static bool IsBidi(char c) => c is >= '\u202A' and <= '\u202E' or >= '\u2066' and <= '\u2069';
}
