namespace OllamaContinuity.Internal;

/// <summary>Keeps secrets out of everything the module prints, logs or throws.</summary>
public static class Redact
{
    /// <summary>The shortest piece of a secret that is scrubbed on its own (a prefix cut by a length limit, say). The value is 8.</summary>
    public const int FragmentLength = 8;

    /// <summary>scheme://host:port/path of a URI: no user info, no query (Azure-style <c>?api-key=</c>), no fragment.</summary>
    public static string Endpoint(Uri uri) =>
        uri.IsAbsoluteUri ? $"{uri.Scheme}://{uri.Host}{(uri.IsDefaultPort ? "" : ":" + uri.Port)}{uri.AbsolutePath}" : "(relative uri)";

    /// <summary>
    /// Replaces every occurrence of each secret in <paramref name="text"/> with <c>***</c>, and also every run of text
    /// made of pieces of <see cref="FragmentLength"/> or more characters of a secret (what survives when a message was
    /// cut mid-key, or a key echoed in parts). Secrets shorter than 4 characters are ignored.
    /// </summary>
    public static string? Scrub(string? text, params string?[] secrets)
    {
        if (string.IsNullOrEmpty(text))
        {
            return text;
        }

        foreach (var s in secrets)
        {
            if (string.IsNullOrEmpty(s) || s.Length < 4)
            {
                continue;
            }

            text = text.Replace(s, "***", StringComparison.Ordinal);
            if (s.Length >= FragmentLength)
            {
                text = ScrubFragments(text, s);
            }
        }

        return text;
    }

    /// <summary>Cuts <paramref name="text"/> to <paramref name="max"/> characters (plus "...") after scrubbing it: never the other way round.</summary>
    public static string? ScrubAndCut(string? text, int max, params string?[] secrets)
    {
        var scrubbed = Scrub(text, secrets);
        return scrubbed is { } t && t.Length > max ? t[..max] + "..." : scrubbed;
    }

    /// <summary>A webhook or other secret-bearing URL shown as scheme://host/… only.</summary>
    public static string SecretUrl(Uri uri) => uri.IsAbsoluteUri ? $"{uri.Scheme}://{uri.Host}/***" : "***";

    // Every window of FragmentLength characters of the text that occurs in the secret marks those characters; each
    // run of marked characters becomes one "***". Any fragment of the secret that is FragmentLength or longer is
    // covered by its windows, so none survives.
    private static string ScrubFragments(string text, string secret)
    {
        if (text.Length < FragmentLength)
        {
            return text;
        }

        var grams = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i + FragmentLength <= secret.Length; i++)
        {
            grams.Add(secret.Substring(i, FragmentLength));
        }

        bool[]? marked = null;
        for (var i = 0; i + FragmentLength <= text.Length; i++)
        {
            if (grams.Contains(text.Substring(i, FragmentLength)))
            {
                marked ??= new bool[text.Length];
                Array.Fill(marked, true, i, FragmentLength);
            }
        }

        if (marked is null)
        {
            return text;
        }

        var sb = new System.Text.StringBuilder(text.Length);
        for (var i = 0; i < text.Length; i++)
        {
            if (!marked[i])
            {
                sb.Append(text[i]);
            }
            else if (i == 0 || !marked[i - 1])
            {
                sb.Append("***");
            }
        }

        return sb.ToString();
    }
}
