using System.Text;

namespace OllamaContinuity.Internal;

/// <summary>
/// Word wrapping for table columns of the format views: PowerShell's own table wrap cuts at the column width, in the
/// middle of a word. Lines break at spaces; a token longer than the column (a path, a URL) breaks after a '/', '\',
/// '-', '.', ',' or '=' when one falls in the line, and only then at the width.
/// </summary>
public static class TableText
{
    public static string Wrap(object? value, int width)
    {
        var text = value?.ToString() ?? "";
        if (width < 8 || text.Length <= width)
        {
            return text;
        }

        var sb = new StringBuilder(text.Length + 16);
        foreach (var paragraph in text.Replace("\r\n", "\n").Split('\n'))
        {
            if (sb.Length > 0)
            {
                sb.Append('\n');
            }

            WrapParagraph(paragraph, width, sb);
        }

        return sb.ToString();
    }

    private static void WrapParagraph(string text, int width, StringBuilder sb)
    {
        var line = new StringBuilder(width);
        foreach (var word in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var rest = word;
            while (rest.Length > 0)
            {
                var room = line.Length == 0 ? width : width - line.Length - 1;
                if (rest.Length <= room)
                {
                    if (line.Length > 0)
                    {
                        line.Append(' ');
                    }

                    line.Append(rest);
                    rest = "";
                }
                else if (rest.Length <= width && line.Length > 0)
                {
                    Flush(line, sb); // the word fits on a line of its own
                }
                else
                {
                    // Longer than a whole line: fill this line, breaking after punctuation when there is some
                    // (else start it on a line of its own, and cut at the width only when nothing else works).
                    var cut = rest.AsSpan(0, Math.Max(room, 0)).LastIndexOfAny("/\\-.,=:;");
                    if (line.Length > 0 && cut < room / 3)
                    {
                        Flush(line, sb);
                        continue;
                    }

                    var take = cut >= room / 3 ? cut + 1 : room;
                    if (line.Length > 0)
                    {
                        line.Append(' ');
                    }

                    line.Append(rest, 0, take);
                    rest = rest[take..];
                    Flush(line, sb);
                }
            }
        }

        if (line.Length > 0)
        {
            Flush(line, sb);
        }

        if (sb.Length > 0 && sb[^1] == '\n')
        {
            sb.Length--;
        }
    }

    private static void Flush(StringBuilder line, StringBuilder sb)
    {
        sb.Append(line).Append('\n');
        line.Clear();
    }
}
