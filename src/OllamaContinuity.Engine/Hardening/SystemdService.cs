using System.Text;

namespace OllamaContinuity.Hardening;

/// <summary>One assignment read from a unit file or drop-in: which file said it.</summary>
public sealed record SystemdAssignment(string Value, string File);

/// <summary>
/// What systemd would use for a service, read from its unit file and drop-ins under a root directory (like
/// <c>systemctl --root</c>): the [Service] directives (last assignment wins) and the Environment= variables.
/// Drop-ins are read in file-name order across /etc, /run, /usr/lib and /lib; a name in /etc hides the same name
/// further down, as systemd does. Only files named *.conf in the .d folder count (backups are ignored).
/// </summary>
public sealed class SystemdService
{
    internal static readonly string[] UnitDirectories = ["etc/systemd/system", "run/systemd/system", "usr/lib/systemd/system", "lib/systemd/system"];

    public string Name { get; private init; } = "ollama.service";

    /// <summary>The unit file found (full path under the root), or null when the service is not installed.</summary>
    public string? UnitFile { get; private init; }

    /// <summary>Drop-in files in the order systemd applies them.</summary>
    public IReadOnlyList<string> DropIns { get; private init; } = [];

    /// <summary>Effective Environment= variables with the file that set them last.</summary>
    public IReadOnlyDictionary<string, SystemdAssignment> Environment { get; private init; } = new Dictionary<string, SystemdAssignment>();

    /// <summary>Effective [Service] directives other than Environment= (User, Group, MemoryMax...).</summary>
    public IReadOnlyDictionary<string, SystemdAssignment> Directives { get; private init; } = new Dictionary<string, SystemdAssignment>();

    public bool Exists => UnitFile is not null || DropIns.Count > 0;

    public string? Env(string name) => Environment.TryGetValue(name, out var a) ? a.Value : null;

    public string? Directive(string name) => Directives.TryGetValue(name, out var a) ? a.Value : null;

    /// <summary>Reads the service under <paramref name="root"/> ("/" for this machine). <paramref name="replace"/> substitutes the content of one drop-in path (to preview a change).</summary>
    public static SystemdService Load(string root, string name = "ollama.service", (string Path, string? Content)? replace = null)
    {
        string? unit = null;
        var dropIns = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var dir in UnitDirectories)
        {
            var d = System.IO.Path.Combine(root, dir);
            var candidate = System.IO.Path.Combine(d, name);
            unit ??= File.Exists(candidate) ? candidate : null;
            var dotD = System.IO.Path.Combine(d, name + ".d");
            if (Directory.Exists(dotD))
            {
                foreach (var f in Directory.EnumerateFiles(dotD, "*.conf"))
                {
                    dropIns.TryAdd(System.IO.Path.GetFileName(f), f);
                }
            }
        }

        if (replace is { } r)
        {
            var fileName = System.IO.Path.GetFileName(r.Path);
            if (r.Content is null)
            {
                dropIns.Remove(fileName);
            }
            else
            {
                dropIns[fileName] = r.Path;
            }
        }

        var env = new Dictionary<string, SystemdAssignment>(StringComparer.Ordinal);
        var directives = new Dictionary<string, SystemdAssignment>(StringComparer.Ordinal);
        var envFiles = new List<string>();
        foreach (var file in (unit is null ? [] : new[] { unit }).Concat(dropIns.Values))
        {
            var text = replace is { } rr && file == rr.Path ? rr.Content ?? "" : SafeRead(file);
            Apply(text, file, env, directives, envFiles);
        }

        // EnvironmentFile= is read after Environment= and wins over it, whatever the order in the files.
        foreach (var entry in envFiles)
        {
            var path = System.IO.Path.Combine(root, entry.TrimStart('-').TrimStart('/'));
            foreach (var line in SafeRead(path).Replace("\r\n", "\n").Split('\n'))
            {
                var t = line.Trim();
                var eq = t.IndexOf('=');
                if (t.Length == 0 || t[0] is '#' or ';' || eq <= 0)
                {
                    continue;
                }

                var key = t[..eq].Trim();
                key = key.StartsWith("export ", StringComparison.Ordinal) ? key[7..].Trim() : key;
                env[key] = new SystemdAssignment(string.Concat(SplitWords(t[(eq + 1)..].Trim())), path);
            }
        }

        return new SystemdService { Name = name, UnitFile = unit, DropIns = dropIns.Values.ToArray(), Environment = env, Directives = directives };
    }

    /// <summary>Parses one unit file's [Service] section into <paramref name="env"/> and <paramref name="directives"/>.</summary>
    public static void Apply(string text, string file, Dictionary<string, SystemdAssignment> env, Dictionary<string, SystemdAssignment> directives, List<string>? environmentFiles = null)
    {
        var section = "";
        foreach (var raw in JoinContinuations(text))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line[0] is '#' or ';')
            {
                continue;
            }

            if (line[0] == '[')
            {
                section = line.Trim('[', ']');
                continue;
            }

            var eq = line.IndexOf('=');
            if (section != "Service" || eq <= 0)
            {
                continue;
            }

            var key = line[..eq].Trim();
            var value = line[(eq + 1)..].Trim();
            if (key == "Environment")
            {
                if (value.Length == 0)
                {
                    env.Clear(); // an empty assignment resets the list
                    continue;
                }

                foreach (var word in SplitWords(value))
                {
                    var e = word.IndexOf('=');
                    if (e > 0)
                    {
                        env[word[..e]] = new SystemdAssignment(word[(e + 1)..], file);
                    }
                }
            }
            else if (key == "EnvironmentFile")
            {
                if (value.Length == 0)
                {
                    environmentFiles?.Clear();
                }
                else
                {
                    environmentFiles?.AddRange(SplitWords(value));
                }
            }
            else if (value.Length == 0)
            {
                directives.Remove(key);
            }
            else
            {
                directives[key] = new SystemdAssignment(value, file);
            }
        }
    }

    /// <summary>Quotes one Environment= assignment for a unit file (double quotes, C escapes, % doubled for specifiers).</summary>
    public static string QuoteEnvironment(string name, string value)
    {
        var sb = new StringBuilder("\"");
        foreach (var c in name + "=" + value)
        {
            sb.Append(c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '%' => "%%",
                _ => c.ToString(),
            });
        }

        return sb.Append('"').ToString();
    }

    /// <summary>Splits a value into words as systemd does: quotes group, backslash escapes, %% is a literal %.</summary>
    public static IEnumerable<string> SplitWords(string value)
    {
        var sb = new StringBuilder();
        var inWord = false;
        char quote = '\0';
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (quote == '\0' && char.IsWhiteSpace(c))
            {
                if (inWord)
                {
                    yield return sb.ToString();
                    sb.Clear();
                    inWord = false;
                }

                continue;
            }

            inWord = true;
            if (c == '\\' && i + 1 < value.Length)
            {
                var n = value[++i];
                sb.Append(n switch { 'n' => '\n', 't' => '\t', _ => n });
            }
            else if (c == '%' && i + 1 < value.Length && value[i + 1] == '%')
            {
                sb.Append('%');
                i++;
            }
            else if (quote == '\0' && c is '"' or '\'')
            {
                quote = c;
            }
            else if (c == quote)
            {
                quote = '\0';
            }
            else
            {
                sb.Append(c);
            }
        }

        if (inWord)
        {
            yield return sb.ToString();
        }
    }

    private static IEnumerable<string> JoinContinuations(string text)
    {
        var pending = new StringBuilder();
        foreach (var line in text.Replace("\r\n", "\n").Split('\n'))
        {
            if (line.EndsWith('\\'))
            {
                pending.Append(line[..^1]).Append(' ');
                continue;
            }

            pending.Append(line);
            yield return pending.ToString();
            pending.Clear();
        }

        if (pending.Length > 0)
        {
            yield return pending.ToString();
        }
    }

    private static string SafeRead(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return "";
        }
    }
}
