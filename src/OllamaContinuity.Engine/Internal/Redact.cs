namespace OllamaContinuity.Internal;

/// <summary>Keeps secrets out of everything the module prints, logs or throws.</summary>
public static class Redact
{
    /// <summary>scheme://host:port/path of a URI: no user info, no query (Azure-style <c>?api-key=</c>), no fragment.</summary>
    public static string Endpoint(Uri uri) =>
        uri.IsAbsoluteUri ? $"{uri.Scheme}://{uri.Host}{(uri.IsDefaultPort ? "" : ":" + uri.Port)}{uri.AbsolutePath}" : "(relative uri)";

    /// <summary>Replaces every occurrence of each secret in <paramref name="text"/> with <c>***</c>.</summary>
    public static string? Scrub(string? text, params string?[] secrets)
    {
        if (string.IsNullOrEmpty(text))
        {
            return text;
        }

        foreach (var s in secrets)
        {
            if (!string.IsNullOrEmpty(s) && s.Length >= 4)
            {
                text = text.Replace(s, "***", StringComparison.Ordinal);
            }
        }

        return text;
    }

    /// <summary>A webhook or other secret-bearing URL shown as scheme://host/… only.</summary>
    public static string SecretUrl(Uri uri) => uri.IsAbsoluteUri ? $"{uri.Scheme}://{uri.Host}/***" : "***";
}
