namespace OllamaContinuity;

/// <summary>
/// The list type of every collection property of the module's output objects (firewall AllowFrom/Commands/Warnings,
/// a drill's steps, probes and alerts, a request's attempts, a log entry's messages). It is an ordinary list for
/// scripts (<c>$r.AllowFrom -contains '10.0.0.0/8'</c>, <c>$report.Probes | Where-Object ...</c>, ConvertTo-Json
/// writes an array), and its <see cref="ToString"/> joins the items with "; ", which is what Export-Csv,
/// ConvertTo-Csv and ConvertTo-Html write for a property and what a serialized object (Start-Job, remoting) keeps,
/// instead of a type name such as <c>System.String[]</c>.
/// </summary>
public sealed class ItemList<T> : List<T>
{
    /// <summary>The separator of <see cref="ToString"/>.</summary>
    public const string Separator = "; ";

    public ItemList()
    {
    }

    public ItemList(IEnumerable<T> items)
        : base(items)
    {
    }

    public static implicit operator ItemList<T>(T[] items) => new(items);

    /// <summary>The items' own text, joined with "; " (empty for no items).</summary>
    public override string ToString() => string.Join(Separator, this);
}
