// Every AccessKey of the account, with the instances each is bound to.
import { AccessKeyTable } from '../components/AccessKeyTable';

export function AccessKeys() {
  return (
    <section>
      <div class="page-head">
        <h1>AccessKeys</h1>
      </div>
      <AccessKeyTable />
    </section>
  );
}
